"""Consent to telemonitoring, recorded by site staff or coordinators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem
from maillage_telemetry.api.schemas import ConsentRead, ConsentUpdate
from maillage_telemetry.use_cases.consent import Consent, find_consent, record_consent

router = APIRouter(tags=["consent"])
PatientRef = Annotated[str, Path(min_length=1, max_length=128)]


def _read(consent: Consent) -> ConsentRead:
    return ConsentRead(
        patient_ref=consent.patient_ref,
        granted=consent.granted,
        recorded_at=consent.recorded_at,
        recorded_by=consent.recorded_by,
    )


@router.put("/consents/{patient_ref}", response_model=ConsentRead)
async def put_consent(
    patient_ref: PatientRef,
    body: ConsentUpdate,
    caller: Annotated[Principal, requires(Role.NURSE, Role.COORDINATOR)],
    uow: UnitOfWorkDep,
) -> ConsentRead:
    """Record that the patient behind `patient_ref` consents (or no longer does)."""
    now = datetime.now(UTC)
    consent = await record_consent(uow, patient_ref, body.granted, caller.subject, now)
    return _read(consent)


@router.get("/consents/{patient_ref}", response_model=ConsentRead)
async def get_consent(
    patient_ref: PatientRef,
    caller: Annotated[Principal, requires(Role.NURSE, Role.COORDINATOR)],
    uow: UnitOfWorkDep,
) -> ConsentRead:
    consent = await find_consent(uow, patient_ref)
    if consent is None:
        raise Problem(404, "Not Found", "no consent recorded for this patient_ref")
    return _read(consent)
