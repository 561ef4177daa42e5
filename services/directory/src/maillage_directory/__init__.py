"""Maillage directory.

Who offers what, where: professionals (requis), sites (requérants) and kiosks,
searchable and on a map.
"""
