"""Booking-specific dependencies: its settings, the identity vault, the calling responder."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from maillage_booking.db import repositories as repo
from maillage_booking.db.blob_store import BlobStore
from maillage_booking.db.direct_booking import Statements
from maillage_booking.domain.identity import IdentityVault
from maillage_booking.settings import BookingSettings
from maillage_common.auth import Principal
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.http.dependencies import get_runtime
from maillage_common.http.problems import Problem


async def get_settings(request: Request) -> BookingSettings:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop per request.
    return cast(BookingSettings, get_runtime(request).settings)


SettingsDep = Annotated[BookingSettings, Depends(get_settings)]


async def get_vault(request: Request) -> IdentityVault:
    settings = cast(BookingSettings, get_runtime(request).settings)
    if not settings.patient_key:
        raise Problem(503, "Service unavailable", "BOOKING_PATIENT_KEY is not configured")
    vault: IdentityVault | None = getattr(request.app.state, "identity_vault", None)
    if vault is None:
        vault = IdentityVault(settings.patient_key)
        request.app.state.identity_vault = vault
    return vault


VaultDep = Annotated[IdentityVault, Depends(get_vault)]


async def get_statements(request: Request) -> Statements:
    """Autocommit statements on the service's pool (built once, on the first request)."""
    statements: Statements | None = getattr(request.app.state, "booking_statements", None)
    if statements is None:
        runtime = get_runtime(request)
        statements = Statements(
            runtime.engine, max_event_bytes=runtime.settings.kafka_max_message_bytes
        )
        request.app.state.booking_statements = statements
    return statements


StatementsDep = Annotated[Statements, Depends(get_statements)]


async def get_blob_store(request: Request) -> BlobStore:
    store: BlobStore = request.app.state.blob_store
    return store


BlobStoreDep = Annotated[BlobStore, Depends(get_blob_store)]


async def responder_id_of(caller: Principal, uow: UnitOfWork) -> str:
    """The directory id of a calling responder, found by the RPPS in their token."""
    if not caller.rpps:
        raise Problem(403, "Forbidden", "the token carries no RPPS number")
    async with uow:
        row = await repo.responder_by_rpps(uow.session, caller.rpps)
    if row is None:
        raise Problem(403, "Forbidden", "no responder with this RPPS in the directory")
    return str(row.id)
