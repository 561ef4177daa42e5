"""Composition root: the only place where the session-signalling service is wired together."""

from __future__ import annotations

from fastapi import FastAPI

import maillage_session_signalling
from maillage.session_signalling.v1 import events_pb2
from maillage_common.service import create_service_app
from maillage_session_signalling import api, handlers
from maillage_session_signalling.settings import SessionSignallingSettings

# Their topics are created at startup; the events are recorded through the outbox.
PUBLISHED_EVENTS = (
    events_pb2.SessionScheduled,
    events_pb2.PatientWaiting,
    events_pb2.ParticipantJoined,
    events_pb2.ParticipantLeft,
    events_pb2.SessionStarted,
    events_pb2.SessionEnded,
    events_pb2.SessionNoShow,
    events_pb2.SessionFailed,
    events_pb2.SessionQualityReported,
)


def create_app(settings: SessionSignallingSettings | None = None) -> FastAPI:
    settings = settings or SessionSignallingSettings.from_environment()
    return create_service_app(
        settings,
        title="Maillage session-signalling",
        description=(maillage_session_signalling.__doc__ or "").strip(),
        routers=api.routers(),
        published=PUBLISHED_EVENTS,
        consumers=handlers.consumers(),
    )
