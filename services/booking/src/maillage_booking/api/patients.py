"""Patients: identity (encrypted at rest), INS check, consent; events only see patient_ref."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from maillage_booking.api.common import site_scope
from maillage_booking.api.deps import VaultDep
from maillage_booking.api.schemas import ConsentUpdate, PatientCreate
from maillage_booking.use_cases import patients as uc
from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep

router = APIRouter(prefix="/patients", tags=["patients"])

Staff = Annotated[Principal, requires(Role.NURSE, Role.COORDINATOR, Role.RESPONDER)]


@router.post("", status_code=201)
async def register_patient(
    body: PatientCreate, uow: UnitOfWorkDep, vault: VaultDep, caller: Staff
) -> JSONResponse:
    """Register a patient by INS (201), or return the known one (200)."""
    created, view = await uc.register_patient(
        uow,
        vault,
        uc.RegisterPatient(
            ins=body.ins,
            birth_name=body.birth_name,
            first_names=body.first_names,
            birth_date=body.birth_date.isoformat(),
            sex=body.sex,
            birthplace_code=body.birthplace_code,
            consent_teleconsultation=body.consent_teleconsultation,
            gp_rpps=body.gp_rpps,
            site_id=site_scope(caller),
        ),
    )
    return JSONResponse(view, status_code=201 if created else 200)


@router.get("/{patient_id}")
async def get_patient(
    patient_id: uuid.UUID, uow: UnitOfWorkDep, vault: VaultDep, caller: Staff
) -> dict[str, Any]:
    return await uc.read_patient(uow, vault, patient_id, site_scope(caller))


@router.put("/{patient_id}/consent")
async def put_consent(
    patient_id: uuid.UUID, body: ConsentUpdate, uow: UnitOfWorkDep, caller: Staff
) -> dict[str, Any]:
    return await uc.set_consent(uow, patient_id, body.consent_teleconsultation)
