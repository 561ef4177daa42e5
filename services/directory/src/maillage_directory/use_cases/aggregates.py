"""Create, replace, deactivate and reactivate professionals, sites and kiosks.

Every change bumps the aggregate's version (its ETag), appends to the change history
(who, when, what) and records the full snapshot event, all in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.db.repositories import ChangeRecord, DirectoryRepository, StoredAggregate
from maillage_directory.domain.errors import (
    ConflictError,
    NotFoundError,
    ValidationFailedError,
    VersionMismatchError,
)
from maillage_directory.domain.geography import communes
from maillage_directory.domain.model import (
    KioskFields,
    ProfessionalFields,
    SiteFields,
    professional_errors,
    site_errors,
)
from maillage_directory.metrics import CHANGES
from maillage_directory.use_cases import snapshots

Validator = Callable[[BaseModel], BaseModel]
Guard = Callable[[DirectoryRepository, BaseModel, uuid.UUID | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AggregateKind:
    """What differs between professionals, sites and kiosks when they are written."""

    name: str
    validate: Validator
    columns: Callable[[dict[str, Any]], dict[str, Any]]
    event: Callable[[StoredAggregate, str, datetime], Message]
    guard: Guard


def now() -> datetime:
    return datetime.now(UTC)


def _validated_professional(fields: BaseModel) -> BaseModel:
    assert isinstance(fields, ProfessionalFields)
    normalised, errors = professional_errors(fields)
    if errors:
        raise ValidationFailedError(errors)
    return normalised


def _validated_site(fields: BaseModel) -> BaseModel:
    assert isinstance(fields, SiteFields)
    normalised, errors = site_errors(fields)
    if errors:
        raise ValidationFailedError(errors)
    return normalised


def _validated_kiosk(fields: BaseModel) -> BaseModel:
    assert isinstance(fields, KioskFields)
    return fields


def _professional_columns(data: dict[str, Any]) -> dict[str, Any]:
    places = data["practice_locations"]
    first = places[0] if places else None
    return {
        "rpps": data["rpps"],
        "family_name": data["family_name"],
        "specialty_codes": data["specialty_codes"],
        "acts": data["acts"],
        "departements": data["departements"],
        "languages": data["languages"],
        "technical_vendor": data["technical_solution"]["vendor"].lower(),
        "response_hours": data["usual_expertise_response_hours"],
        "accepts_external_patients": data["accepts_external_patients"],
        "departement": communes()[first["commune_insee"]].departement if first else None,
        "latitude": first["location"]["latitude"] if first else None,
        "longitude": first["location"]["longitude"] if first else None,
    }


def _site_columns(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": data["name"],
        "finess": data["finess"] or None,
        "siret": data["siret"] or None,
        "category": data["category"],
        "commune_insee": data["commune_insee"],
        "departement": data["departement"],
        "latitude": data["location"]["latitude"],
        "longitude": data["location"]["longitude"],
        "specialties_needed": data["specialties_needed"],
        "technical_vendor": data["technical_solution"]["vendor"].lower(),
        "receives_external_patients": data["receives_external_patients"],
    }


def _kiosk_columns(data: dict[str, Any]) -> dict[str, Any]:
    return {"site_id": uuid.UUID(data["site_id"])}


async def _unique_rpps(
    repo: DirectoryRepository, fields: BaseModel, own_id: uuid.UUID | None
) -> None:
    assert isinstance(fields, ProfessionalFields)
    holder = await repo.find_id("professional", "rpps", fields.rpps)
    if holder is not None and holder != own_id:
        raise ConflictError("rpps", "a professional with this RPPS number is already registered")


async def _unique_finess(
    repo: DirectoryRepository, fields: BaseModel, own_id: uuid.UUID | None
) -> None:
    assert isinstance(fields, SiteFields)
    if not fields.finess:
        return
    holder = await repo.find_id("site", "finess", fields.finess)
    if holder is not None and holder != own_id:
        raise ConflictError("finess", "a site with this FINESS number is already registered")


async def _existing_site(
    repo: DirectoryRepository, fields: BaseModel, own_id: uuid.UUID | None
) -> None:
    assert isinstance(fields, KioskFields)
    try:
        site_id = uuid.UUID(fields.site_id)
    except ValueError:
        site_id = None
    if site_id is None or await repo.get("site", site_id) is None:
        raise ValidationFailedError.single("site_id", "no such site")


PROFESSIONAL = AggregateKind(
    "professional",
    _validated_professional,
    _professional_columns,
    snapshots.professional_changed,
    _unique_rpps,
)
SITE = AggregateKind("site", _validated_site, _site_columns, snapshots.site_changed, _unique_finess)
KIOSK = AggregateKind(
    "kiosk", _validated_kiosk, _kiosk_columns, snapshots.kiosk_changed, _existing_site
)


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


async def write(
    uow: UnitOfWork,
    kind: AggregateKind,
    stored: StoredAggregate,
    change: str,
    actor: str,
    diff: dict[str, Any],
    *,
    new: bool,
    extra_columns: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    repo = DirectoryRepository(uow.session)
    columns = {**kind.columns(stored.data), **(extra_columns or {})}
    if new:
        await repo.insert(kind.name, stored, columns)
    else:
        await repo.replace(kind.name, stored, columns)
    record = ChangeRecord(stored.version, change, actor, stored.updated_at, diff, reason)
    await repo.add_change(kind.name, stored.id, record)
    await uow.record(kind.event(stored, change, stored.updated_at), subject=str(stored.id))


async def create(
    uow: UnitOfWork,
    kind: AggregateKind,
    fields: BaseModel,
    *,
    actor: str,
    extra_data: Mapping[str, Any] | None = None,
    extra_columns: Mapping[str, Any] | None = None,
) -> StoredAggregate:
    """Create an aggregate at version 1 (validated, unique, recorded, published)."""
    normalised = kind.validate(fields)
    moment = now()
    data = {**normalised.model_dump(mode="json"), **(extra_data or {})}
    stored = StoredAggregate(uuid.uuid4(), 1, True, data, moment, moment)
    with _unique(kind):
        async with uow:
            repo = DirectoryRepository(uow.session)
            await kind.guard(repo, normalised, None)
            diff = _diff({}, data)
            await write(
                uow, kind, stored, "created", actor, diff, new=True, extra_columns=extra_columns
            )
            await uow.commit()
    CHANGES.labels(kind.name, "created").inc()
    return stored


@contextmanager
def _unique(kind: AggregateKind) -> Iterator[None]:
    # A concurrent writer may take the same unique identifier between the guard's check
    # and our insert: the unique index has the last word.
    try:
        yield
    except IntegrityError as error:
        field = "rpps" if kind is PROFESSIONAL else "finess"
        raise ConflictError(field, "already registered by a concurrent request") from error


async def locked(
    repo: DirectoryRepository, kind: AggregateKind, aggregate_id: uuid.UUID, expected: int
) -> StoredAggregate:
    current = await repo.get(kind.name, aggregate_id, lock=True)
    if current is None:
        raise NotFoundError(f"no {kind.name} {aggregate_id}")
    if current.version != expected:
        raise VersionMismatchError(current.version)
    return current


async def get(uow: UnitOfWork, kind: AggregateKind, aggregate_id: uuid.UUID) -> StoredAggregate:
    """The current state of an aggregate, or NotFoundError."""
    async with uow:
        found = await DirectoryRepository(uow.session).get(kind.name, aggregate_id)
    if found is None:
        raise NotFoundError(f"no {kind.name} {aggregate_id}")
    return found


async def replace_fields(
    uow: UnitOfWork,
    kind: AggregateKind,
    aggregate_id: uuid.UUID,
    fields: BaseModel,
    *,
    expected_version: int,
    actor: str,
    keep: tuple[str, ...] = (),
) -> StoredAggregate:
    """Replace the stated fields of an aggregate if it is still at `expected_version`.

    A replacement that changes nothing keeps the version and publishes nothing.
    """
    normalised = kind.validate(fields)
    with _unique(kind):
        async with uow:
            repo = DirectoryRepository(uow.session)
            current = await locked(repo, kind, aggregate_id, expected_version)
            await kind.guard(repo, normalised, aggregate_id)
            data = normalised.model_dump(mode="json")
            data.update({key: current.data[key] for key in keep if key in current.data})
            if data == current.data:
                return current
            stored = replace(current, version=current.version + 1, data=data, updated_at=now())
            diff = _diff(current.data, data)
            await write(uow, kind, stored, "updated", actor, diff, new=False)
            await uow.commit()
    CHANGES.labels(kind.name, "updated").inc()
    return stored


async def set_active(
    uow: UnitOfWork,
    kind: AggregateKind,
    aggregate_id: uuid.UUID,
    active: bool,
    *,
    expected_version: int,
    actor: str,
) -> StoredAggregate:
    """Deactivate or reactivate; a no-op when already in that state."""
    async with uow:
        repo = DirectoryRepository(uow.session)
        current = await locked(repo, kind, aggregate_id, expected_version)
        if current.active == active:
            return current
        stored = replace(current, version=current.version + 1, active=active, updated_at=now())
        change = "reactivated" if active else "deactivated"
        diff = {"active": [current.active, active]}
        await write(uow, kind, stored, change, actor, diff, new=False)
        await uow.commit()
        CHANGES.labels(kind.name, change).inc()
    return stored


async def history(
    uow: UnitOfWork, kind: AggregateKind, aggregate_id: uuid.UUID
) -> list[ChangeRecord]:
    """Who changed what, when, oldest first."""
    async with uow:
        repo = DirectoryRepository(uow.session)
        if await repo.get(kind.name, aggregate_id) is None:
            raise NotFoundError(f"no {kind.name} {aggregate_id}")
        return list(await repo.history(kind.name, aggregate_id))
