"""Bulk import of professionals from a regional operator's CSV.

Every row is validated on its own and written in its own transaction: a rejected row
writes nothing, an accepted row is created or updated (keyed by RPPS), and a row equal
to what is stored changes nothing, so importing the same file twice is a no-op.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.db.repositories import DirectoryRepository
from maillage_directory.domain.errors import (
    ConflictError,
    FieldError,
    ValidationFailedError,
)
from maillage_directory.domain.model import ProfessionalFields
from maillage_directory.metrics import IMPORTED_ROWS
from maillage_directory.use_cases import aggregates
from maillage_directory.use_cases.aggregates import PROFESSIONAL

REQUIRED_COLUMNS = ("rpps", "family_name", "given_name")
LIST_COLUMNS = ("specialty_codes", "acts", "departements", "languages")
LOCATION_COLUMNS = ("commune_insee", "latitude", "longitude")
MAX_ROWS = 50_000
_Shape = TypeVar("_Shape", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RowOutcome:
    row: int
    status: str  # created | updated | unchanged | rejected
    key: str  # the row's natural key (RPPS, FINESS, or site name)
    id: uuid.UUID | None = None
    errors: list[FieldError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ImportReport:
    rows: list[RowOutcome]

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.rows if outcome.status == status)


def parse_csv(content: bytes, required: tuple[str, ...] = REQUIRED_COLUMNS) -> list[dict[str, str]]:
    """The file's rows, or ValidationFailedError naming what makes the file unreadable."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationFailedError.single("file", "the file is not UTF-8 text") from error
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [name for name in required if name not in header]
        if missing:
            raise ValidationFailedError.single("file", f"missing columns: {', '.join(missing)}")
        reader.fieldnames = header
        rows = []
        for row in reader:
            if None in row:
                raise ValidationFailedError.single(
                    "file", f"line {reader.line_num} has more cells than the header"
                )
            rows.append({k: (v or "").strip() for k, v in row.items()})
            if len(rows) > MAX_ROWS:
                raise ValidationFailedError.single("file", f"more than {MAX_ROWS} rows")
    except csv.Error as error:
        raise ValidationFailedError.single("file", f"malformed CSV: {error}") from error
    return rows


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split("|") if part.strip()]


def _fields_of(row: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        key: value
        for key, value in row.items()
        if value
        and key not in LIST_COLUMNS + LOCATION_COLUMNS
        and key not in {"location_name", "technical_vendor", "technical_product"}
    }
    for key in LIST_COLUMNS:
        if row.get(key):
            fields[key] = split_list(row[key])
    if row.get("commune_insee") or row.get("latitude") or row.get("longitude"):
        fields["practice_locations"] = [
            {
                "name": row.get("location_name", ""),
                "commune_insee": row.get("commune_insee", ""),
                "location": {"latitude": row.get("latitude"), "longitude": row.get("longitude")},
            }
        ]
    if row.get("technical_vendor") or row.get("technical_product"):
        fields["technical_solution"] = {
            "vendor": row.get("technical_vendor", ""),
            "product": row.get("technical_product", ""),
        }
    return fields


def _row_fields(row: dict[str, str]) -> ProfessionalFields:
    return validated_professional(_fields_of(row))


async def upsert_professional(
    uow: UnitOfWork, fields: ProfessionalFields, actor: str, *, partial: set[str] | None = None
) -> tuple[str, uuid.UUID]:
    """Create or update by RPPS; with `partial`, only those fields replace the stored ones."""
    normalised = PROFESSIONAL.validate(fields)
    assert isinstance(normalised, ProfessionalFields)
    async with uow:
        existing = await DirectoryRepository(uow.session).find_id(
            "professional", "rpps", normalised.rpps
        )
    if existing is None:
        stored = await aggregates.create(uow, PROFESSIONAL, normalised, actor=actor)
        return "created", stored.id
    current = await aggregates.get(uow, PROFESSIONAL, existing)
    if partial is not None:
        merged = {**current.data, **normalised.model_dump(mode="json", include=partial)}
        normalised = ProfessionalFields.model_validate(merged)
    stored = await aggregates.replace_fields(
        uow, PROFESSIONAL, existing, normalised, expected_version=current.version, actor=actor
    )
    return ("unchanged" if stored.version == current.version else "updated"), existing


async def import_professionals(
    uow: UnitOfWork, rows: list[dict[str, str]], *, actor: str
) -> ImportReport:
    """Import every row; the report says what happened to each (line numbers from 2)."""
    outcomes: list[RowOutcome] = []
    seen: set[str] = set()
    for index, row in enumerate(rows, start=2):
        rpps = row.get("rpps", "")
        try:
            if rpps in seen:
                raise ConflictError("rpps", "this RPPS already appears earlier in the file")
            fields = _row_fields(row)
            status, aggregate_id = await upsert_professional(uow, fields, actor)
            seen.add(fields.rpps)
            outcomes.append(RowOutcome(index, status, rpps, aggregate_id))
        except ValidationFailedError as error:
            outcomes.append(RowOutcome(index, "rejected", rpps, errors=error.errors))
        except ConflictError as error:
            outcomes.append(
                RowOutcome(index, "rejected", rpps, errors=[FieldError(error.field, error.reason)])
            )
    count_rows("csv", outcomes)
    return ImportReport(outcomes)


def count_rows(source: str, outcomes: list[RowOutcome]) -> None:
    for outcome in outcomes:
        IMPORTED_ROWS.labels(source, outcome.status).inc()


def validated_professional(raw: dict[str, Any]) -> ProfessionalFields:
    return validated_shape(ProfessionalFields, raw)


def validated_shape(shape: type[_Shape], raw: dict[str, Any]) -> _Shape:
    """`raw` parsed into `shape`, or ValidationFailedError naming each faulty field."""
    try:
        return shape.model_validate(raw)
    except ValidationError as error:
        errors = [
            FieldError(".".join(str(p) for p in item["loc"]) or "entry", item["msg"])
            for item in error.errors()
        ]
        raise ValidationFailedError(errors) from error
