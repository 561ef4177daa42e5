"""Maillage developer stack: embedded infrastructure, `maillage` CLI and pytest fixtures.

Never shipped in service images: services must not import it (import-linter enforces it).
"""
