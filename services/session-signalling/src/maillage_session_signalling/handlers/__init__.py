"""Event entrypoints: one consumer group per read model, applying events idempotently."""

from __future__ import annotations

from maillage_common.bus import EventConsumer


def consumers() -> list[EventConsumer]:
    return []
