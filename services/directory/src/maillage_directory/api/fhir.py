"""FHIR R4 read views: Practitioner, PractitionerRole, Organization, Location, Device."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from maillage_common.auth import Principal, Role, public, requires
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_directory.api.common import (
    PROBLEMS,
    OptionalCaller,
    domain_errors,
    sees_private_fields,
)
from maillage_directory.api.sites import ensure_site_scope
from maillage_directory.domain import fhir
from maillage_directory.use_cases import aggregates
from maillage_directory.use_cases.aggregates import KIOSK, PROFESSIONAL, SITE, AggregateKind

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=PROBLEMS)
FHIR_JSON = "application/fhir+json"

KioskReader = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE, Role.NURSE, Role.KIOSK)]


async def _stored(uow: UnitOfWork, kind: AggregateKind, resource_id: uuid.UUID) -> dict[str, Any]:
    with domain_errors():
        found = await aggregates.get(uow, kind, resource_id)
    return {
        "id": str(found.id),
        "version": found.version,
        "active": found.active,
        "data": found.data,
        "updated_at": found.updated_at.isoformat(),
    }


def _fhir(resource: dict[str, Any]) -> JSONResponse:
    return JSONResponse(resource, media_type=FHIR_JSON)


@router.get("/Practitioner/{resource_id}", dependencies=[public()])
async def read_practitioner(
    resource_id: uuid.UUID, caller: OptionalCaller, uow: UnitOfWorkDep
) -> JSONResponse:
    stored = await _stored(uow, PROFESSIONAL, resource_id)
    return _fhir(fhir.practitioner(stored, private=sees_private_fields(caller)))


@router.get("/PractitionerRole/{resource_id}", dependencies=[public()])
async def read_practitioner_role(
    resource_id: uuid.UUID, caller: OptionalCaller, uow: UnitOfWorkDep
) -> JSONResponse:
    """One role per professional in Maillage: it shares the professional's id."""
    stored = await _stored(uow, PROFESSIONAL, resource_id)
    return _fhir(fhir.practitioner_role(stored, private=sees_private_fields(caller)))


@router.get("/Organization/{resource_id}", dependencies=[public()])
async def read_organization(
    resource_id: uuid.UUID, caller: OptionalCaller, uow: UnitOfWorkDep
) -> JSONResponse:
    stored = await _stored(uow, SITE, resource_id)
    return _fhir(fhir.organization(stored, private=sees_private_fields(caller)))


@router.get("/Location/{resource_id}", dependencies=[public()])
async def read_location(resource_id: uuid.UUID, uow: UnitOfWorkDep) -> JSONResponse:
    """A site's place: it shares the site's id."""
    return _fhir(fhir.location(await _stored(uow, SITE, resource_id)))


@router.get("/Device/{resource_id}")
async def read_device(
    resource_id: uuid.UUID, caller: KioskReader, uow: UnitOfWorkDep
) -> JSONResponse:
    """A kiosk and its connected devices (site users: their own site's kiosks only)."""
    stored = await _stored(uow, KIOSK, resource_id)
    ensure_site_scope(caller, uuid.UUID(stored["data"]["site_id"]))
    return _fhir(fhir.device(stored))
