"""Event entrypoints: one consumer group per read model, applying events idempotently."""

from __future__ import annotations

from maillage_common.bus import EventConsumer
from maillage_session_signalling.handlers.booking import booking_consumer


def consumers() -> list[EventConsumer]:
    return [booking_consumer()]
