"""Bulk import of sites from a regional operator's CSV (same guarantees as professionals).

A row is keyed by its FINESS number when it has one, else by (name, commune).
"""

from __future__ import annotations

import uuid
from typing import Any

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.db.repositories import DirectoryRepository
from maillage_directory.domain.errors import (
    ConflictError,
    FieldError,
    InvalidValueError,
    ValidationFailedError,
)
from maillage_directory.domain.fhir import BundleEntry
from maillage_directory.domain.model import SiteFields
from maillage_directory.domain.opening_hours import parse_osm
from maillage_directory.use_cases import aggregates
from maillage_directory.use_cases.aggregates import SITE
from maillage_directory.use_cases.imports import (
    ImportReport,
    RowOutcome,
    count_rows,
    split_list,
    validated_shape,
)

REQUIRED_SITE_COLUMNS = ("name", "category", "commune_insee", "latitude", "longitude")
_BOOLEANS = {
    "1": True,
    "true": True,
    "oui": True,
    "yes": True,
    "0": False,
    "false": False,
    "non": False,
    "no": False,
    "": False,
}
_FLAGS = ("rural", "under_served", "receives_external_patients")
_SCALARS = (
    "name",
    "finess",
    "siret",
    "category",
    "deployment_model",
    "commune_insee",
    "departement",
    "responsible",
    "contact_phone",
)


def _site_fields(row: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {key: row[key] for key in _SCALARS if row.get(key)}
    fields["location"] = {"latitude": row.get("latitude"), "longitude": row.get("longitude")}
    errors = []
    for flag in _FLAGS:
        value = row.get(flag, "").lower()
        if value not in _BOOLEANS:
            errors.append(FieldError(flag, "expected true/false (or oui/non, 1/0)"))
        fields[flag] = _BOOLEANS.get(value, False)
    if row.get("opening_hours"):
        # Spreadsheets carry OSM text (`Mo-Fr 08:00-12:00,14:00-18:00; Sa off`).
        try:
            fields["opening_hours"] = parse_osm(row["opening_hours"]).model_dump(mode="json")
        except InvalidValueError as error:
            errors.append(FieldError("opening_hours", error.reason))
    if errors:
        raise ValidationFailedError(errors)
    fields["specialties_needed"] = split_list(row.get("specialties_needed", ""))
    fields["equipment"] = {
        "kiosks": row.get("kiosks") or 0,
        "connected_devices": split_list(row.get("connected_devices", "")),
    }
    fields["technical_solution"] = {
        "vendor": row.get("technical_vendor", ""),
        "product": row.get("technical_product", ""),
    }
    return fields


async def _existing(uow: UnitOfWork, fields: SiteFields) -> uuid.UUID | None:
    async with uow:
        repo = DirectoryRepository(uow.session)
        if fields.finess:
            return await repo.find_id("site", "finess", fields.finess)
        return await repo.find_by_name("site", fields.name, fields.commune_insee)


async def _upsert(
    uow: UnitOfWork, fields: SiteFields, actor: str, *, partial: set[str] | None = None
) -> tuple[str, uuid.UUID]:
    """Create or update; with `partial`, only those fields replace the stored ones."""
    normalised = SITE.validate(fields)
    assert isinstance(normalised, SiteFields)
    existing = await _existing(uow, normalised)
    if existing is None:
        stored = await aggregates.create(uow, SITE, normalised, actor=actor)
        return "created", stored.id
    current = await aggregates.get(uow, SITE, existing)
    if partial is not None:
        merged = {**current.data, **normalised.model_dump(mode="json", include=partial)}
        normalised = SiteFields.model_validate(merged)
    stored = await aggregates.replace_fields(
        uow, SITE, existing, normalised, expected_version=current.version, actor=actor
    )
    return ("unchanged" if stored.version == current.version else "updated"), existing


async def import_sites(uow: UnitOfWork, rows: list[dict[str, str]], *, actor: str) -> ImportReport:
    """Import every site row; the report says what happened to each (lines from 2)."""
    outcomes: list[RowOutcome] = []
    seen: set[str] = set()
    for index, row in enumerate(rows, start=2):
        key = row.get("finess") or f"{row.get('name', '')}@{row.get('commune_insee', '')}"
        try:
            if key in seen:
                raise ConflictError("finess", "this site already appears earlier in the file")
            fields = validated_shape(SiteFields, _site_fields(row))
            status, aggregate_id = await _upsert(uow, fields, actor)
            seen.add(key)
            outcomes.append(RowOutcome(index, status, key, aggregate_id))
        except ValidationFailedError as error:
            outcomes.append(RowOutcome(index, "rejected", key, errors=error.errors))
        except ConflictError as error:
            outcomes.append(
                RowOutcome(index, "rejected", key, errors=[FieldError(error.field, error.reason)])
            )
    count_rows("sites-csv", outcomes)
    return ImportReport(outcomes)


async def import_site_entries(
    uow: UnitOfWork, entries: list[BundleEntry], actor: str
) -> list[RowOutcome]:
    """Import the sites found in a FHIR bundle (same rules as CSV rows)."""
    outcomes: list[RowOutcome] = []
    seen: set[str] = set()
    for entry in entries:
        key = entry.fields.get("finess") or entry.fields.get("name", "")
        try:
            if entry.errors:
                raise ValidationFailedError(entry.errors)
            if key in seen:
                raise ConflictError("finess", "this site already appears earlier in the bundle")
            fields = validated_shape(SiteFields, entry.fields)
            status, aggregate_id = await _upsert(uow, fields, actor, partial=set(entry.fields))
            seen.add(key)
            outcomes.append(RowOutcome(entry.position, status, key, aggregate_id))
        except ValidationFailedError as error:
            outcomes.append(RowOutcome(entry.position, "rejected", key, errors=error.errors))
        except ConflictError as error:
            outcomes.append(
                RowOutcome(
                    entry.position, "rejected", key, errors=[FieldError(error.field, error.reason)]
                )
            )
    return outcomes
