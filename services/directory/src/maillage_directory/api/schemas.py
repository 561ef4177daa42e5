"""HTTP shapes (XCreate / XUpdate / XRead) built on the domain's value objects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from maillage_directory.db.repositories import ChangeRecord, StoredAggregate
from maillage_directory.domain.model import KioskFields, ProfessionalFields, SiteFields


class ProfessionalCreate(ProfessionalFields):
    """A professional to register."""


class ProfessionalUpdate(ProfessionalFields):
    """The whole new state of a professional (send If-Match)."""


class _Bookkeeping(BaseModel):
    id: uuid.UUID
    version: int
    active: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime


class ProfessionalRead(_Bookkeeping, ProfessionalFields):
    """A professional; contact fields are null for the public."""

    contact_phone: str | None = None  # type: ignore[assignment]
    mssante_address: str | None = None  # type: ignore[assignment]


class SiteCreate(SiteFields):
    """A site (requérant) to register."""


class SiteUpdate(SiteFields):
    """The whole new state of a site (send If-Match)."""


class SiteRead(_Bookkeeping, SiteFields):
    """A site; contact fields are null for the public."""

    contact_phone: str | None = None  # type: ignore[assignment]
    responsible: str | None = None  # type: ignore[assignment]


class KioskCreate(KioskFields):
    """A kiosk to enrol (site users: the site is the one of their token)."""


class KioskUpdate(KioskFields):
    """The whole new label and device inventory of a kiosk (send If-Match)."""


class KioskRead(_Bookkeeping, KioskFields):
    credential_key_id: str
    credential_revoked: bool


class KioskCredentialRead(BaseModel):
    """Returned once: the directory keeps only a hash of `secret`."""

    kiosk: KioskRead
    key_id: str
    secret: str


class KioskCredentialCheck(BaseModel):
    key_id: str = Field(max_length=100)
    secret: str = Field(max_length=200)


class KioskCredentialVerdict(BaseModel):
    valid: bool
    kiosk_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None


class ChangeRead(BaseModel):
    version: int
    change: str
    actor: str
    changed_at: datetime
    diff: dict[str, Any]
    reason: str | None = None

    @classmethod
    def of(cls, record: ChangeRecord) -> ChangeRead:
        return cls(
            version=record.version,
            change=record.change,
            actor=record.actor,
            changed_at=record.changed_at,
            diff=record.diff,
            reason=record.reason,
        )


def _bookkeeping(stored: StoredAggregate) -> dict[str, Any]:
    return {
        "id": stored.id,
        "version": stored.version,
        "active": stored.active,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }


def professional_read(stored: StoredAggregate, *, private: bool) -> ProfessionalRead:
    data = dict(stored.data)
    if not private:
        data.update(contact_phone=None, mssante_address=None)
    return ProfessionalRead.model_validate({**data, **_bookkeeping(stored)})


def site_read(stored: StoredAggregate, *, private: bool) -> SiteRead:
    data = dict(stored.data)
    if not private:
        data.update(contact_phone=None, responsible=None)
    return SiteRead.model_validate({**data, **_bookkeeping(stored)})


def kiosk_read(stored: StoredAggregate) -> KioskRead:
    return KioskRead.model_validate({**stored.data, **_bookkeeping(stored)})
