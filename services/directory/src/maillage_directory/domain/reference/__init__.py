"""Versioned reference data shipped with the service (see README.md here)."""
