"""Composition root: the only place where the session-signalling service is wired together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

import maillage_session_signalling
from maillage.session_signalling.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.runtime import Runtime
from maillage_common.service import create_service_app
from maillage_session_signalling import api, handlers
from maillage_session_signalling.peers.registry import PeerRegistry
from maillage_session_signalling.settings import SessionSignallingSettings
from maillage_session_signalling.signalling.fabric import PostgresFabric
from maillage_session_signalling.signalling.server import SignallingServer
from maillage_session_signalling.signalling.tokens import JoinTokens

_log = structlog.get_logger(__name__)

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


class _RuntimeUnits:
    """Unit-of-work factory bound once the runtime exists (it is built in the lifespan)."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None

    def __call__(self) -> UnitOfWork:
        if self.runtime is None:
            raise RuntimeError("the service is not started")
        return self.runtime.unit_of_work()


def create_app(settings: SessionSignallingSettings | None = None) -> FastAPI:
    settings = settings or SessionSignallingSettings.from_environment()
    units = _RuntimeUnits()
    tokens = JoinTokens(settings.join_token_secret.get_secret_value())
    server = SignallingServer(settings, tokens, units)
    peers = PeerRegistry()

    fabric = _fabric(settings)
    if fabric is not None:
        server.hub.fabric = fabric
        fabric.on_frame(server.from_other_replica)

    @contextlib.asynccontextmanager
    async def live_sessions(runtime: Runtime) -> AsyncIterator[None]:
        units.runtime = runtime
        if fabric is not None:
            await fabric.start()
        # The startup heap (FastAPI, pydantic, aiortc, av: ~10^6 objects) never dies: out of
        # the collector's reach, full collections stop pausing every room for tens of ms.
        gc.collect()
        gc.freeze()
        scanner = asyncio.create_task(_scan_no_shows(server, settings), name="noshow-scan")
        try:
            yield
        finally:
            scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scanner
            # WebSockets close with 1001 (going away); peers are closed before the loop ends.
            await server.close()
            await peers.close_all()
            if fabric is not None:
                await fabric.stop()

    app = create_service_app(
        settings,
        title="Maillage session-signalling",
        description=(maillage_session_signalling.__doc__ or "").strip(),
        routers=api.routers(),
        published=PUBLISHED_EVENTS,
        consumers=handlers.consumers() if settings.consume_events else [],
        background=[live_sessions],
    )
    app.state.signalling = server
    app.state.signalling_settings = settings
    app.state.join_tokens = tokens
    app.state.peers = peers
    app.state.preflights = {}
    return app


def _fabric(settings: SessionSignallingSettings) -> PostgresFabric | None:
    if settings.replica_relay == "none":
        return None
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    # NOTIFY is database-wide: one channel per schema keeps deployments sharing it apart.
    return PostgresFabric(dsn, f"signalling_{settings.owned_schema}"[:63], settings.owned_schema)


async def _scan_no_shows(server: SignallingServer, settings: SessionSignallingSettings) -> None:
    while True:
        await asyncio.sleep(settings.noshow_scan_interval_seconds)
        try:
            declared = await server.no_show_scan()
        except Exception as error:
            _log.warning("noshow_scan_failed", error=repr(error))
            continue
        if declared:
            _log.info("noshows_declared", count=declared)
