"""Composition root: the only place where the telemetry service is wired together."""

from __future__ import annotations

from fastapi import FastAPI

import maillage_telemetry
from maillage.telemetry.v1 import events_pb2
from maillage_common.service import create_service_app
from maillage_telemetry import api, handlers
from maillage_telemetry.background import fleet_watchdog
from maillage_telemetry.settings import TelemetrySettings

# Their topics are created at startup; the events are recorded through the outbox.
PUBLISHED_EVENTS = (
    events_pb2.MeasurementBatchIngested,
    events_pb2.KioskHeartbeatReceived,
    events_pb2.CallQualityReported,
    events_pb2.AlertRaised,
    events_pb2.AlertCleared,
)


def create_app(settings: TelemetrySettings | None = None) -> FastAPI:
    settings = settings or TelemetrySettings.from_environment()
    return create_service_app(
        settings,
        title="Maillage telemetry",
        description=(maillage_telemetry.__doc__ or "").strip(),
        routers=api.routers(),
        published=PUBLISHED_EVENTS,
        consumers=handlers.consumers(settings),
        # Last: freezes what the chassis and the watchdog set up.
        background=[fleet_watchdog(settings)],
    )
