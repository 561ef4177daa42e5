"""Composition root: the only place where the directory service is wired together."""

from __future__ import annotations

from fastapi import FastAPI

import maillage_directory
from maillage.directory.v1 import events_pb2
from maillage_common.service import create_service_app
from maillage_directory import api, handlers
from maillage_directory.settings import DirectorySettings

# Their topics are created at startup; the events are recorded through the outbox.
PUBLISHED_EVENTS = (
    events_pb2.ProfessionalChanged,
    events_pb2.SiteChanged,
    events_pb2.KioskChanged,
)


def create_app(settings: DirectorySettings | None = None) -> FastAPI:
    settings = settings or DirectorySettings.from_environment()
    return create_service_app(
        settings,
        title="Maillage directory",
        description=(maillage_directory.__doc__ or "").strip(),
        routers=api.routers(),
        published=PUBLISHED_EVENTS,
        consumers=handlers.consumers(),
    )
