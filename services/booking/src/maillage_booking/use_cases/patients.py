"""Patients: identity encrypted at rest, consent, and the pseudonymous reference events carry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from maillage_booking.db.tables import patients
from maillage_booking.domain.errors import DomainError, NotFoundError
from maillage_booking.domain.identity import Identity, IdentityVault
from maillage_booking.domain.ins import validate_ins
from maillage_booking.use_cases.common import utcnow
from maillage_common.db.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class RegisterPatient:
    ins: str
    birth_name: str
    first_names: str
    birth_date: str
    sex: str
    birthplace_code: str
    consent_teleconsultation: bool
    gp_rpps: str | None
    site_id: str | None


def _view(row: Any, identity: Identity | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(row.id),
        "patient_ref": row.patient_ref,
        "qualification": row.qualification,
        "consent_teleconsultation": row.consent_teleconsultation,
        "gp_rpps": row.gp_rpps,
    }
    if identity is not None:
        body.update(
            ins=identity.ins,
            birth_name=identity.birth_name,
            first_names=identity.first_names,
            birth_date=identity.birth_date,
            sex=identity.sex,
            birthplace_code=identity.birthplace_code,
        )
    return body


async def register_patient(
    uow: UnitOfWork, vault: IdentityVault, command: RegisterPatient
) -> tuple[bool, dict[str, Any]]:
    """Register (or find) a patient by INS. A valid INS key never makes the identity
    qualified: qualification (INSi teleservice) is tracked apart and starts provisional."""
    ins = validate_ins(command.ins)
    identity = Identity(
        ins=ins,
        birth_name=command.birth_name,
        first_names=command.first_names,
        birth_date=command.birth_date,
        sex=command.sex,
        birthplace_code=command.birthplace_code,
    )
    now = utcnow()
    async with uow:
        created = await uow.session.execute(
            insert(patients)
            .values(
                id=uuid.uuid4(),
                ins_digest=vault.digest(ins),
                patient_ref=vault.patient_ref(ins),
                identity=vault.encrypt(identity),
                qualification="provisional",
                consent_teleconsultation=command.consent_teleconsultation,
                consent_at=now if command.consent_teleconsultation else None,
                gp_rpps=command.gp_rpps,
                site_id=command.site_id,
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(patients)
        )
        row = created.first()
        is_new = row is not None
        if row is None:
            row = (
                await uow.session.execute(
                    select(patients).where(patients.c.ins_digest == vault.digest(ins))
                )
            ).one()
        await uow.commit()
    return is_new, _view(row, vault.decrypt(row.identity))


async def read_patient(
    uow: UnitOfWork, vault: IdentityVault, patient_id: uuid.UUID, site_id: str | None
) -> dict[str, Any]:
    async with uow:
        row = (
            await uow.session.execute(select(patients).where(patients.c.id == patient_id))
        ).first()
    if row is None or (site_id is not None and row.site_id not in (None, site_id)):
        raise NotFoundError("patient_id", "no such patient")
    return _view(row, vault.decrypt(row.identity))


async def set_consent(uow: UnitOfWork, patient_id: uuid.UUID, consent: bool) -> dict[str, Any]:
    async with uow:
        row = (
            await uow.session.execute(
                update(patients)
                .where(patients.c.id == patient_id)
                .values(consent_teleconsultation=consent, consent_at=utcnow() if consent else None)
                .returning(patients)
            )
        ).first()
        if row is None:
            raise NotFoundError("patient_id", "no such patient")
        await uow.commit()
    return _view(row, None)


async def patient_ref_for_booking(uow: UnitOfWork, patient_id: uuid.UUID | None) -> str:
    """The pseudonym to book with; the patient must have consented to teleconsultation."""
    if patient_id is None:
        return ""
    async with uow:
        row = (
            await uow.session.execute(
                select(patients.c.patient_ref, patients.c.consent_teleconsultation).where(
                    patients.c.id == patient_id
                )
            )
        ).first()
    if row is None:
        raise DomainError("patient_id", "unknown patient")
    if not row.consent_teleconsultation:
        raise DomainError("patient_id", "the patient has not consented to teleconsultation")
    return str(row.patient_ref)
