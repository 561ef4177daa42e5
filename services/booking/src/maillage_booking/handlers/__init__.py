"""Event entrypoints: one consumer group per read model, applying events idempotently."""

from __future__ import annotations

from maillage.directory.v1 import events_pb2 as directory_events
from maillage.session_signalling.v1 import events_pb2 as session_events
from maillage_booking.handlers.directory import on_kiosk, on_professional, on_site
from maillage_booking.handlers.sessions import on_session_ended, on_session_no_show
from maillage_common.bus import EventConsumer


def consumers(group_prefix: str = "booking") -> list[EventConsumer]:
    """The consumer groups; the prefix is the owned schema, so that two deployments (or two
    test instances) on separate schemas each keep their own complete read model."""
    return [
        EventConsumer(
            f"{group_prefix}.directory",
            handlers={
                directory_events.ProfessionalChanged: on_professional,
                directory_events.SiteChanged: on_site,
                directory_events.KioskChanged: on_kiosk,
            },
        ),
        EventConsumer(
            f"{group_prefix}.sessions",
            handlers={
                session_events.SessionEnded: on_session_ended,
                session_events.SessionNoShow: on_session_no_show,
            },
            topics=["sessions.lifecycle"],
        ),
    ]
