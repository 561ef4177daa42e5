"""W3C trace context carried from HTTP requests into events and back out of consumers.

Only the `traceparent` is propagated (no tracing backend is required); logs carry the
trace id so one request can be followed across services.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: ContextVar[str | None] = ContextVar("traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def continue_trace(incoming: str | None) -> str:
    """A child span id in the incoming trace, or a new trace when there is none."""
    match = _TRACEPARENT.match(incoming or "")
    return new_traceparent(match.group(1) if match else None)


def trace_id_of(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None


def current_traceparent() -> str | None:
    return _current.get()


def set_current_traceparent(traceparent: str | None) -> None:
    _current.set(traceparent)
