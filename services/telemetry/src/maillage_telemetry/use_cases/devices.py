"""Connected devices enrolled on kiosks: enrolment (a credential of their own), revocation,
and which devices may send measurements for a kiosk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import DeviceRepository, KioskHealthRepository
from maillage_telemetry.domain import devices
from maillage_telemetry.use_cases.common import Uploader

ENROLMENT_LIMIT = 200


class DeviceAlreadyEnrolledError(Exception):
    """The device is active already (here or on another kiosk): revoke it first."""


class DeviceNotFoundError(LookupError):
    """No such device on this kiosk (or the kiosk is outside the caller's site)."""


class DeviceNotAdmittedError(Exception):
    """The presented device credential is unknown, wrong or revoked."""


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """A credential as a device presented it (checked inside the upload's transaction)."""

    text: str


@dataclass(frozen=True, slots=True)
class Enrolment:
    row: dict[str, Any]
    credential: str | None = None
    """Only right after enrolment: the credential is never stored nor shown again."""


async def kiosk_site(session: AsyncSession, kiosk_id: str) -> str | None:
    """The kiosk's site as the directory says, failing that its last heartbeat, failing
    that the kiosk's own token when it enrolled a device."""
    health = KioskHealthRepository(session)
    placed = await health.directory_kiosk(kiosk_id) or await health.state(kiosk_id)
    if placed is not None:
        return str(placed["site_id"])
    enrolments = await DeviceRepository(session).of_kiosk(kiosk_id, limit=1)
    return str(enrolments[0]["site_id"]) if enrolments else None


async def enrol_device(
    uow: UnitOfWork,
    *,
    kiosk_id: str,
    known_site_id: str | None,
    site_scope: str | None,
    device_id: str,
    device_kind: str,
    by: str,
    now: datetime,
) -> Enrolment:
    """Enrol `device_id` on the kiosk and issue its credential (shown once).

    `known_site_id` is the site the caller's token vouches for (a kiosk enrolling its own
    peripheral); otherwise the kiosk's site comes from the directory read model."""
    issued = devices.issue()
    async with uow:
        site_id = known_site_id or await kiosk_site(uow.session, kiosk_id) or ""
        if site_scope is not None and site_id != site_scope:
            raise DeviceNotFoundError("no such kiosk")
        row = await DeviceRepository(uow.session).enrol(
            {
                "credential_id": issued.credential_id,
                "device_id": device_id,
                "device_kind": device_kind,
                "kiosk_id": kiosk_id,
                "site_id": site_id,
                "secret_hash": issued.secret_hash,
                "enrolled_at": now,
                "enrolled_by": by,
            }
        )
        if row is None:
            raise DeviceAlreadyEnrolledError(
                "this device is already enrolled on a kiosk: revoke it there first"
            )
        await uow.commit()
    return Enrolment(dict(row), issued.text)


async def revoke_device(
    uow: UnitOfWork,
    *,
    kiosk_id: str,
    site_scope: str | None,
    device_id: str,
    by: str,
    reason: str | None,
    now: datetime,
) -> Enrolment:
    """Revoke the device's credential; revoking again answers the same revocation."""
    async with uow:
        repository = DeviceRepository(uow.session)
        row = await repository.revoke(kiosk_id, device_id, now, by, reason)
        if row is None:
            row = next(
                (
                    r
                    for r in await repository.of_kiosk(kiosk_id, limit=ENROLMENT_LIMIT)
                    if r["device_id"] == device_id
                ),
                None,
            )
        if row is None or (site_scope is not None and row["site_id"] != site_scope):
            raise DeviceNotFoundError("no such device on this kiosk")
        await uow.commit()
    return Enrolment(dict(row))


async def kiosk_devices(
    uow: UnitOfWork, kiosk_id: str, *, site_scope: str | None
) -> list[Enrolment]:
    """The kiosk's enrolments, newest first (revoked ones included, for the audit)."""
    async with uow:
        if site_scope is not None and await kiosk_site(uow.session, kiosk_id) != site_scope:
            raise DeviceNotFoundError("no such kiosk")
        rows = await DeviceRepository(uow.session).of_kiosk(kiosk_id, limit=ENROLMENT_LIMIT)
    return [Enrolment(dict(r)) for r in rows]


async def device_uploader(session: AsyncSession, credential: str) -> Uploader:
    """The kiosk and device a device credential speaks for (inside the caller's
    transaction); DeviceNotAdmittedError when it cannot be trusted."""
    presented = devices.parse(credential)
    if presented is None:
        raise DeviceNotAdmittedError("the device credential is malformed")
    row = await DeviceRepository(session).by_credential(presented.credential_id)
    if row is None or not presented.matches(row["secret_hash"]):
        raise DeviceNotAdmittedError("the device credential is not recognised")
    if row["revoked_at"] is not None:
        raise DeviceNotAdmittedError("the device credential was revoked")
    return Uploader(kiosk_id=row["kiosk_id"], site_id=row["site_id"], device_id=row["device_id"])
