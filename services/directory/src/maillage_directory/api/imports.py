"""Bulk imports: a report of accepted and rejected rows, never a half-written row."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_directory.api.common import PROBLEMS, domain_errors
from maillage_directory.domain.errors import ValidationFailedError
from maillage_directory.use_cases.fhir_imports import import_fhir_bundle as fhir_import
from maillage_directory.use_cases.imports import ImportReport, import_professionals, parse_csv
from maillage_directory.use_cases.site_imports import REQUIRED_SITE_COLUMNS, import_sites

router = APIRouter(prefix="/imports", tags=["imports"], responses=PROBLEMS)

Manager = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE)]
MAX_UPLOAD_BYTES = 20_000_000


class RowError(BaseModel):
    field: str
    reason: str


class RowReport(BaseModel):
    row: int
    status: str
    key: str
    id: uuid.UUID | None
    errors: list[RowError]


class ImportReportRead(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    rows: list[RowReport]


@router.post(
    "/professionals.csv",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_professionals_csv(
    request: Request, caller: Manager, uow: UnitOfWorkDep
) -> ImportReportRead:
    """Import professionals from CSV (`,` or `;`; lists separated by `|`)."""
    body = await request.body()
    with domain_errors():
        if len(body) > MAX_UPLOAD_BYTES:
            raise ValidationFailedError.single("file", "larger than 20 MB")
        report = await import_professionals(uow, parse_csv(body), actor=caller.subject)
    return _report(report)


@router.post(
    "/sites.csv",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_sites_csv(
    request: Request, caller: Manager, uow: UnitOfWorkDep
) -> ImportReportRead:
    """Import sites from CSV (keyed by FINESS, else by name and commune)."""
    body = await request.body()
    with domain_errors():
        if len(body) > MAX_UPLOAD_BYTES:
            raise ValidationFailedError.single("file", "larger than 20 MB")
        rows = parse_csv(body, REQUIRED_SITE_COLUMNS)
        report = await import_sites(uow, rows, actor=caller.subject)
    return _report(report)


@router.post(
    "/fhir",
    openapi_extra={
        "requestBody": {"content": {"application/fhir+json": {"schema": {"type": "object"}}}}
    },
)
async def import_fhir_bundle(
    request: Request, caller: Manager, uow: UnitOfWorkDep
) -> ImportReportRead:
    """Import professionals from a FHIR R4 Bundle of Practitioner / PractitionerRole."""
    body = await request.body()
    with domain_errors():
        if len(body) > MAX_UPLOAD_BYTES:
            raise ValidationFailedError.single("file", "larger than 20 MB")
        try:
            bundle = json.loads(body)
        except ValueError as error:
            raise ValidationFailedError.single("file", "not JSON") from error
        report = await fhir_import(uow, bundle, actor=caller.subject)
    return _report(report)


def _report(report: ImportReport) -> ImportReportRead:
    return ImportReportRead(
        created=report.count("created"),
        updated=report.count("updated"),
        unchanged=report.count("unchanged"),
        rejected=report.count("rejected"),
        rows=[
            RowReport(
                row=o.row,
                status=o.status,
                key=o.key,
                id=o.id,
                errors=[RowError(field=e.field, reason=e.reason) for e in o.errors],
            )
            for o in report.rows
        ],
    )
