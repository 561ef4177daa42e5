"""Fixtures of the session-signalling tests (helpers live in `signalling_testing`)."""

from signalling_testing import live_service

__all__ = ["live_service"]
