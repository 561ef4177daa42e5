"""Maillage booking.

Slots, appointments, on-demand requests and tele-expertise: never a double booking.
"""
