"""Maillage telemetry.

Kiosk fleet health, connected-device measurements and call quality.
"""
