"""Connected devices enrolled on kiosks: enrolment (credential issued once), list, revocation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem
from maillage_telemetry.api.access import site_scope
from maillage_telemetry.api.schemas import (
    DeviceEnrol,
    DeviceEnrolledRead,
    DeviceListRead,
    DeviceRead,
    DeviceRevoke,
)
from maillage_telemetry.use_cases.devices import (
    DeviceAlreadyEnrolledError,
    DeviceNotFoundError,
    Enrolment,
    enrol_device,
    kiosk_devices,
    revoke_device,
)

router = APIRouter(tags=["devices"])
KioskId = Annotated[str, Path(min_length=1, max_length=128)]
DeviceId = Annotated[str, Path(min_length=1, max_length=128)]
# Who manages a kiosk's devices: operators, the site's staff, and the kiosk itself (pairing
# a peripheral from its maintenance screen).
_MANAGERS = (Role.COORDINATOR, Role.SERVICE, Role.NURSE, Role.KIOSK)


def _own_kiosk_only(caller: Principal, kiosk_id: str) -> None:
    """A kiosk manages its own devices, not another kiosk's (which reads as absent)."""
    if caller.roles == {Role.KIOSK} and caller.subject != kiosk_id:
        raise Problem(404, "Not Found", "no such kiosk")


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "credential_id": row["credential_id"],
        "device_id": row["device_id"],
        "kind": row["device_kind"],
        "kiosk_id": row["kiosk_id"],
        "site_id": row["site_id"],
        "active": row["revoked_at"] is None,
        "enrolled_at": row["enrolled_at"],
        "enrolled_by": row["enrolled_by"],
        "revoked_at": row["revoked_at"],
        "revoked_by": row["revoked_by"],
        "revoke_reason": row["revoke_reason"],
    }


def _read(enrolment: Enrolment) -> DeviceRead:
    return DeviceRead(**_fields(enrolment.row))


@router.post(
    "/kiosks/{kiosk_id}/devices",
    response_model=DeviceEnrolledRead,
    status_code=status.HTTP_201_CREATED,
)
async def post_device(
    kiosk_id: KioskId,
    body: DeviceEnrol,
    caller: Annotated[Principal, requires(*_MANAGERS)],
    uow: UnitOfWorkDep,
) -> DeviceEnrolledRead:
    """Enrol a connected device on the kiosk; the answer carries its credential, once.
    A device already active (here or elsewhere) answers 409: revoke it first."""
    _own_kiosk_only(caller, kiosk_id)
    try:
        enrolment = await enrol_device(
            uow,
            kiosk_id=kiosk_id,
            known_site_id=caller.site_id if Role.KIOSK in caller.roles else None,
            site_scope=site_scope(caller),
            device_id=body.device_id,
            device_kind=body.kind,
            by=caller.subject,
            now=datetime.now(UTC),
        )
    except DeviceNotFoundError as error:
        raise Problem(404, "Not Found", str(error)) from error
    except DeviceAlreadyEnrolledError as error:
        raise Problem(409, "Conflict", str(error)) from error
    assert enrolment.credential is not None
    return DeviceEnrolledRead(**_fields(enrolment.row), credential=enrolment.credential)


@router.get("/kiosks/{kiosk_id}/devices", response_model=DeviceListRead)
async def get_devices(
    kiosk_id: KioskId,
    caller: Annotated[Principal, requires(*_MANAGERS)],
    uow: UnitOfWorkDep,
) -> DeviceListRead:
    """The kiosk's enrolments, newest first, revoked ones included (never a credential)."""
    _own_kiosk_only(caller, kiosk_id)
    try:
        enrolments = await kiosk_devices(uow, kiosk_id, site_scope=site_scope(caller))
    except DeviceNotFoundError as error:
        raise Problem(404, "Not Found", str(error)) from error
    return DeviceListRead(kiosk_id=kiosk_id, devices=[_read(e) for e in enrolments])


@router.post("/kiosks/{kiosk_id}/devices/{device_id}/revocation", response_model=DeviceRead)
async def post_revocation(
    kiosk_id: KioskId,
    device_id: DeviceId,
    body: DeviceRevoke,
    caller: Annotated[Principal, requires(*_MANAGERS)],
    uow: UnitOfWorkDep,
) -> DeviceRead:
    """Revoke the device's credential: its measurements are refused from now on, whoever
    uploads them. Revoking again answers the same revocation."""
    _own_kiosk_only(caller, kiosk_id)
    try:
        enrolment = await revoke_device(
            uow,
            kiosk_id=kiosk_id,
            site_scope=site_scope(caller),
            device_id=device_id,
            by=caller.subject,
            reason=body.reason,
            now=datetime.now(UTC),
        )
    except DeviceNotFoundError as error:
        raise Problem(404, "Not Found", str(error)) from error
    return _read(enrolment)
