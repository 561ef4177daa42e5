"""Bulk import of a FHIR R4 Bundle: Practitioner/PractitionerRole and Organization/Location.

Same guarantees as the CSV imports: one transaction per professional or site, a report
entry for each, and importing the same bundle twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.domain.errors import ConflictError, FieldError, ValidationFailedError
from maillage_directory.domain.fhir import professionals_in_bundle, sites_in_bundle
from maillage_directory.use_cases.imports import (
    ImportReport,
    RowOutcome,
    count_rows,
    upsert_professional,
    validated_professional,
)
from maillage_directory.use_cases.site_imports import import_site_entries


async def import_fhir_bundle(uow: UnitOfWork, bundle: Any, *, actor: str) -> ImportReport:
    """Import the professionals and sites of a FHIR R4 Bundle.

    Only the fields a bundle carries (identity, profession, specialties, languages and
    contacts; name, identifiers, category, commune and position) replace those of an
    existing professional or site; the rest is kept.
    """
    entries, errors = professionals_in_bundle(bundle)
    if errors:
        raise ValidationFailedError(errors)
    outcomes: list[RowOutcome] = await import_site_entries(uow, sites_in_bundle(bundle), actor)
    seen: set[str] = set()
    for entry in entries:
        rpps = str(entry.fields.get("rpps", ""))
        try:
            if entry.errors:
                raise ValidationFailedError(entry.errors)
            if rpps in seen:
                raise ConflictError("rpps", "this RPPS already appears earlier in the bundle")
            fields = validated_professional(entry.fields)
            status, aggregate_id = await upsert_professional(
                uow, fields, actor, partial=set(entry.fields)
            )
            seen.add(fields.rpps)
            outcomes.append(RowOutcome(entry.position, status, rpps, aggregate_id))
        except ValidationFailedError as error:
            outcomes.append(RowOutcome(entry.position, "rejected", rpps, errors=error.errors))
        except ConflictError as error:
            outcomes.append(
                RowOutcome(
                    entry.position, "rejected", rpps, errors=[FieldError(error.field, error.reason)]
                )
            )
    count_rows("fhir", outcomes)
    return ImportReport(sorted(outcomes, key=lambda outcome: outcome.row))
