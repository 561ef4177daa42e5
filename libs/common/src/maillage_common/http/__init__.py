"""HTTP chassis: RFC 9457 problem responses, health and readiness routes."""
