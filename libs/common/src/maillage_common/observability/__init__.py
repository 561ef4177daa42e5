"""Structured logs, W3C trace context and Prometheus metrics."""
