"""Composition root: the only place where the booking service is wired together."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

import maillage_booking
from maillage.booking.v1 import events_pb2
from maillage_booking import api, handlers
from maillage_booking.api.common import install_error_mapping
from maillage_booking.background import DEFAULT_SWEEPS, sweeper
from maillage_booking.db.blob_store import FilesystemBlobStore
from maillage_booking.settings import BookingSettings
from maillage_common.service import create_service_app

# Their topics are created at startup; the events are recorded through the outbox.
PUBLISHED_EVENTS = (
    events_pb2.AppointmentHeld,
    events_pb2.AppointmentBooked,
    events_pb2.AppointmentCancelled,
    events_pb2.AppointmentRescheduled,
    events_pb2.AppointmentFulfilled,
    events_pb2.AppointmentNoShow,
    events_pb2.ConsultationRequested,
    events_pb2.ConsultationOffered,
    events_pb2.ConsultationAccepted,
    events_pb2.ConsultationExpired,
    events_pb2.ExpertiseRequested,
    events_pb2.ExpertiseAccepted,
    events_pb2.ExpertiseAnswered,
    events_pb2.ExpertiseRejected,
    events_pb2.ExpertiseOverdue,
    events_pb2.ExpertiseClosed,
)


def create_app(settings: BookingSettings | None = None) -> FastAPI:
    """The booking app: routes, published events, consumers and timers."""
    settings = settings or BookingSettings.from_environment()
    app = create_service_app(
        settings,
        title="Maillage booking",
        description=(maillage_booking.__doc__ or "").strip(),
        routers=api.routers(),
        published=PUBLISHED_EVENTS,
        consumers=handlers.consumers(settings.owned_schema),
        background=[sweeper(*DEFAULT_SWEEPS)],
    )
    install_error_mapping(app)
    app.state.blob_store = FilesystemBlobStore(Path(settings.attachment_directory))
    return app
