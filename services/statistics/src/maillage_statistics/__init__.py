"""Maillage statistics.

The regional observatory: indicators rebuilt from events, Prometheus metrics for Grafana.
"""
