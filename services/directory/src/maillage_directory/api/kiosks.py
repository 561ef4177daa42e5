"""Kiosks: enrolment with their own credential (secret shown once), inventory, revocation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from maillage_common.auth import Principal, Role, requires
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_directory.api.common import PROBLEMS, ExpectedVersion, domain_errors, set_etag
from maillage_directory.api.schemas import (
    ChangeRead,
    KioskCreate,
    KioskCredentialCheck,
    KioskCredentialRead,
    KioskCredentialVerdict,
    KioskRead,
    KioskUpdate,
    kiosk_read,
)
from maillage_directory.api.sites import ensure_site_scope
from maillage_directory.db.repositories import StoredAggregate
from maillage_directory.use_cases import aggregates, kiosks
from maillage_directory.use_cases.aggregates import KIOSK

router = APIRouter(prefix="/kiosks", tags=["kiosks"], responses=PROBLEMS)

Manager = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE, Role.NURSE)]
Reader = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE, Role.NURSE, Role.KIOSK)]
Service = Annotated[Principal, requires(Role.SERVICE)]


def _site_bound(caller: Principal) -> bool:
    return not caller.has_any(frozenset({Role.COORDINATOR, Role.SERVICE}))


async def _visible(uow: UnitOfWork, caller: Principal, kiosk_id: uuid.UUID) -> StoredAggregate:
    with domain_errors():
        stored = await aggregates.get(uow, KIOSK, kiosk_id)
    ensure_site_scope(caller, uuid.UUID(stored.data["site_id"]))
    return stored


@router.post("", status_code=201)
async def enrol_kiosk(
    body: KioskCreate, caller: Manager, uow: UnitOfWorkDep, response: Response
) -> KioskCredentialRead:
    if _site_bound(caller):
        # A site user enrols kiosks at their own site, whatever the body says.
        body = body.model_copy(update={"site_id": caller.site_id or ""})
    with domain_errors():
        stored, credential = await kiosks.enrol_kiosk(uow, body, actor=caller.subject)
    set_etag(response, stored.version)
    response.headers["Location"] = f"/kiosks/{stored.id}"
    return KioskCredentialRead(
        kiosk=kiosk_read(stored), key_id=credential.key_id, secret=credential.secret
    )


@router.get("/{kiosk_id}")
async def read_kiosk(
    kiosk_id: uuid.UUID, caller: Reader, uow: UnitOfWorkDep, response: Response
) -> KioskRead:
    stored = await _visible(uow, caller, kiosk_id)
    set_etag(response, stored.version)
    return kiosk_read(stored)


@router.put("/{kiosk_id}")
async def replace_kiosk(
    kiosk_id: uuid.UUID,
    body: KioskUpdate,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> KioskRead:
    current = await _visible(uow, caller, kiosk_id)
    if _site_bound(caller) or not body.site_id:
        body = body.model_copy(update={"site_id": current.data["site_id"]})
    with domain_errors():
        stored = await aggregates.replace_fields(
            uow,
            KIOSK,
            kiosk_id,
            body,
            expected_version=version,
            actor=caller.subject,
            keep=("credential_key_id", "credential_revoked"),
        )
    set_etag(response, stored.version)
    return kiosk_read(stored)


@router.get("")
async def list_kiosks(site_id: uuid.UUID, caller: Reader, uow: UnitOfWorkDep) -> list[KioskRead]:
    """The kiosks enrolled at a site (site users: their own site only)."""
    ensure_site_scope(caller, site_id)
    return [kiosk_read(stored) for stored in await kiosks.kiosks_of_site(uow, site_id)]


@router.post("/{kiosk_id}/deactivate")
async def deactivate_kiosk(
    kiosk_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> KioskRead:
    return await _set_active(kiosk_id, False, caller, version, uow, response)


@router.post("/{kiosk_id}/reactivate")
async def reactivate_kiosk(
    kiosk_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> KioskRead:
    return await _set_active(kiosk_id, True, caller, version, uow, response)


async def _set_active(
    kiosk_id: uuid.UUID,
    active: bool,
    caller: Principal,
    version: int,
    uow: UnitOfWork,
    response: Response,
) -> KioskRead:
    await _visible(uow, caller, kiosk_id)
    with domain_errors():
        stored = await aggregates.set_active(
            uow, KIOSK, kiosk_id, active, expected_version=version, actor=caller.subject
        )
    set_etag(response, stored.version)
    return kiosk_read(stored)


@router.post("/{kiosk_id}/credential/revoke")
async def revoke_kiosk_credential(
    kiosk_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> KioskRead:
    await _visible(uow, caller, kiosk_id)
    with domain_errors():
        stored = await kiosks.revoke_credential(
            uow, kiosk_id, expected_version=version, actor=caller.subject
        )
    set_etag(response, stored.version)
    return kiosk_read(stored)


@router.post("/{kiosk_id}/credential/rotate")
async def rotate_kiosk_credential(
    kiosk_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> KioskCredentialRead:
    await _visible(uow, caller, kiosk_id)
    with domain_errors():
        stored, credential = await kiosks.rotate_credential(
            uow, kiosk_id, expected_version=version, actor=caller.subject
        )
    set_etag(response, stored.version)
    return KioskCredentialRead(
        kiosk=kiosk_read(stored), key_id=credential.key_id, secret=credential.secret
    )


@router.get("/{kiosk_id}/history")
async def kiosk_history(
    kiosk_id: uuid.UUID, caller: Manager, uow: UnitOfWorkDep
) -> list[ChangeRead]:
    await _visible(uow, caller, kiosk_id)
    with domain_errors():
        records = await aggregates.history(uow, KIOSK, kiosk_id)
    return [ChangeRead.of(record) for record in records]


@router.post("/credentials/verify")
async def verify_kiosk_credential(
    body: KioskCredentialCheck, caller: Service, uow: UnitOfWorkDep
) -> KioskCredentialVerdict:
    """For platform services: is this a live kiosk credential, and whose?"""
    kiosk = await kiosks.verify_credential(uow, body.key_id, body.secret)
    if kiosk is None:
        return KioskCredentialVerdict(valid=False)
    return KioskCredentialVerdict(
        valid=True, kiosk_id=kiosk.id, site_id=uuid.UUID(kiosk.data["site_id"])
    )
