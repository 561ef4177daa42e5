"""Kiosk enrolment and its service identity: a secret shown once, only its hash stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, replace

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.db.repositories import DirectoryRepository, StoredAggregate
from maillage_directory.domain.model import KioskFields
from maillage_directory.metrics import CHANGES, KIOSK_CREDENTIAL_CHECKS
from maillage_directory.use_cases.aggregates import KIOSK, create, locked, now, write


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What the kiosk keeps: `key_id` names it, `secret` proves it (returned only once)."""

    key_id: str
    secret: str


def _hash(secret: str) -> str:
    # The secret is 256 random bits, so a plain SHA-256 cannot be brute-forced; a slow
    # password hash would only slow down every kiosk call.
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_credential() -> tuple[IssuedCredential, str]:
    credential = IssuedCredential(f"kiosk_{secrets.token_hex(8)}", secrets.token_urlsafe(32))
    return credential, _hash(credential.secret)


async def enrol_kiosk(
    uow: UnitOfWork, fields: KioskFields, *, actor: str
) -> tuple[StoredAggregate, IssuedCredential]:
    """Enrol a kiosk at its site and issue its first credential."""
    credential, digest = _new_credential()
    stored = await create(
        uow,
        KIOSK,
        fields,
        actor=actor,
        extra_data={"credential_key_id": credential.key_id, "credential_revoked": False},
        extra_columns={
            "credential_key_id": credential.key_id,
            "credential_hash": digest,
            "credential_revoked": False,
        },
    )
    return stored, credential


async def _change_credential(
    uow: UnitOfWork,
    kiosk_id: uuid.UUID,
    *,
    expected_version: int,
    actor: str,
    revoke: bool,
) -> tuple[StoredAggregate, IssuedCredential | None]:
    async with uow:
        repo = DirectoryRepository(uow.session)
        current = await locked(repo, KIOSK, kiosk_id, expected_version)
        issued: IssuedCredential | None = None
        if revoke:
            data = {**current.data, "credential_revoked": True}
            columns: dict[str, object] = {"credential_revoked": True}
        else:
            issued, digest = _new_credential()
            data = {**current.data, "credential_key_id": issued.key_id, "credential_revoked": False}
            columns = {
                "credential_key_id": issued.key_id,
                "credential_hash": digest,
                "credential_revoked": False,
            }
        if data == current.data:
            return current, None
        stored = replace(current, version=current.version + 1, data=data, updated_at=now())
        diff = {
            key: [current.data.get(key), data[key]]
            for key in ("credential_key_id", "credential_revoked")
            if current.data.get(key) != data[key]
        }
        await write(uow, KIOSK, stored, "updated", actor, diff, new=False, extra_columns=columns)
        await uow.commit()
        CHANGES.labels("kiosk", "updated").inc()
    return stored, issued


async def revoke_credential(
    uow: UnitOfWork, kiosk_id: uuid.UUID, *, expected_version: int, actor: str
) -> StoredAggregate:
    """Revoke the kiosk's credential: it is refused from now on (and telemetry is told)."""
    stored, _ = await _change_credential(
        uow, kiosk_id, expected_version=expected_version, actor=actor, revoke=True
    )
    return stored


async def rotate_credential(
    uow: UnitOfWork, kiosk_id: uuid.UUID, *, expected_version: int, actor: str
) -> tuple[StoredAggregate, IssuedCredential]:
    """Issue a new credential (the previous one stops working)."""
    stored, issued = await _change_credential(
        uow, kiosk_id, expected_version=expected_version, actor=actor, revoke=False
    )
    assert issued is not None
    return stored, issued


async def verify_credential(uow: UnitOfWork, key_id: str, secret: str) -> StoredAggregate | None:
    """The kiosk whose live credential this is, or None.

    Refused: unknown key, wrong secret, revoked credential, inactive kiosk or inactive site.
    """
    async with uow:
        repo = DirectoryRepository(uow.session)
        found = await repo.kiosk_by_key(key_id)
        site = (
            None if found is None else await repo.get("site", uuid.UUID(found[0].data["site_id"]))
        )
    if found is None or site is None:
        KIOSK_CREDENTIAL_CHECKS.labels("false").inc()
        return None
    kiosk, digest, revoked = found
    live = not revoked and kiosk.active and site.active
    valid = hmac.compare_digest(digest, _hash(secret)) and live
    KIOSK_CREDENTIAL_CHECKS.labels(str(valid).lower()).inc()
    return kiosk if valid else None


async def kiosks_of_site(uow: UnitOfWork, site_id: uuid.UUID) -> list[StoredAggregate]:
    """Every kiosk enrolled at `site_id`, oldest first."""
    async with uow:
        return await DirectoryRepository(uow.session).list_where("kiosk", "site_id", site_id)
