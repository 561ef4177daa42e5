"""Consent to telemonitoring, by pseudonymous patient reference (booking owns patients)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import ConsentRepository


@dataclass(frozen=True, slots=True)
class Consent:
    patient_ref: str
    granted: bool
    recorded_at: datetime
    recorded_by: str


async def record_consent(
    uow: UnitOfWork, patient_ref: str, granted: bool, by: str, now: datetime
) -> Consent:
    """Grant or withdraw consent; measurements for `patient_ref` are refused without it."""
    async with uow:
        row = await ConsentRepository(uow.session).put(patient_ref, granted, now, by)
        await uow.commit()
    return Consent(row["patient_ref"], row["granted"], row["recorded_at"], row["recorded_by"])


async def find_consent(uow: UnitOfWork, patient_ref: str) -> Consent | None:
    async with uow:
        row = await ConsentRepository(uow.session).get(patient_ref)
    if row is None:
        return None
    return Consent(row["patient_ref"], row["granted"], row["recorded_at"], row["recorded_by"])
