"""Appointments: hold/book (idempotent), confirm, cancel, reschedule, outcome."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from maillage.booking.v1 import events_pb2 as ev
from maillage.common.v1 import types_pb2 as types
from maillage_booking.api.common import act_code, assistance_code, site_of, site_scope
from maillage_booking.api.deps import SettingsDep, get_statements
from maillage_booking.api.schemas import (
    AppointmentCancel,
    AppointmentConfirm,
    AppointmentCreate,
    AppointmentOutcome,
    AppointmentReschedule,
    WaitlistCreate,
)
from maillage_booking.settings import BookingSettings
from maillage_booking.use_cases import appointments as uc
from maillage_booking.use_cases import waitlist as wl
from maillage_booking.use_cases.patients import patient_ref_for_booking
from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep, get_runtime

router = APIRouter(prefix="/appointments", tags=["appointments"])

Booker = Annotated[
    Principal, requires(Role.NURSE, Role.KIOSK, Role.COORDINATOR, Role.RESPONDER, Role.SERVICE)
]
Staff = Annotated[Principal, requires(Role.NURSE, Role.COORDINATOR, Role.RESPONDER, Role.SERVICE)]


def actor_of(caller: Principal) -> ev.Actor.ValueType:
    if Role.RESPONDER in caller.roles:
        return ev.ACTOR_RESPONDER
    if Role.COORDINATOR in caller.roles:
        return ev.ACTOR_COORDINATOR
    if Role.SERVICE in caller.roles:
        return ev.ACTOR_SYSTEM
    return ev.ACTOR_SITE_STAFF


@router.post("", status_code=201)
async def create_appointment(
    body: AppointmentCreate,
    request: Request,
    caller: Booker,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Hold (`hold: true`, confirmed later) or book a slot. Same Idempotency-Key, same answer."""
    # The hot path of the service: the runtime's parts are reached from the request rather
    # than as three dependencies more (FastAPI's resolution of each costs more CPU than the
    # lookup itself).
    runtime = get_runtime(request)
    settings = cast(BookingSettings, runtime.settings)
    statements = await get_statements(request)
    uow = runtime.unit_of_work()
    patient_ref = await patient_ref_for_booking(uow, body.patient_id)
    command = uc.BookSlot(
        responder_id=body.responder_id,
        site_id=site_of(caller, body.site_id),
        act=act_code(body.act),
        start=body.start,
        end=body.end,
        resource_id=body.resource_id,
        assistance=assistance_code(body.assistance),
        specialty_code=body.specialty_code,
        patient_ref=patient_ref,
        hold=body.hold,
        created_by=caller.subject,
        idempotency_scope=caller.subject,
        idempotency_key=idempotency_key,
    )
    outcome = await uc.book(uow, command, timedelta(seconds=settings.hold_ttl_seconds), statements)
    return JSONResponse(outcome.body, status_code=outcome.status)


@router.get("/{appointment_id}")
async def get_appointment(
    appointment_id: uuid.UUID, uow: UnitOfWorkDep, caller: Booker
) -> dict[str, Any]:
    return await uc.get_appointment(uow, appointment_id, site_scope(caller))


@router.post("/{appointment_id}/confirm")
async def confirm_appointment(
    appointment_id: uuid.UUID, body: AppointmentConfirm, uow: UnitOfWorkDep, caller: Booker
) -> dict[str, Any]:
    """Confirm a live hold."""
    patient_ref = await patient_ref_for_booking(uow, body.patient_id)
    return await uc.confirm(uow, appointment_id, site_scope(caller), patient_ref or None)


@router.post("/{appointment_id}/cancel")
async def cancel_appointment(
    appointment_id: uuid.UUID,
    body: AppointmentCancel,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    caller: Booker,
) -> dict[str, Any]:
    """Cancel with a reason (a responder may override the minimum notice)."""
    return await uc.cancel(
        uow,
        appointment_id,
        site_scope(caller),
        reason=ev.CancelReason.Value(f"CANCEL_REASON_{body.reason.upper()}"),
        actor=actor_of(caller),
        notice=timedelta(minutes=settings.cancel_notice_minutes),
        override_notice=Role.RESPONDER in caller.roles,
        hold_ttl=timedelta(seconds=settings.hold_ttl_seconds),
    )


@router.post("/{appointment_id}/reschedule")
async def reschedule_appointment(
    appointment_id: uuid.UUID,
    body: AppointmentReschedule,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    caller: Booker,
) -> dict[str, Any]:
    """Move to another slot atomically: the old one is freed only if the new one is taken,
    then offered to the waitlist."""
    return await uc.reschedule(
        uow,
        appointment_id,
        site_scope(caller),
        start=body.start,
        responder_id=body.responder_id,
        actor=actor_of(caller),
        notice=timedelta(minutes=settings.cancel_notice_minutes),
        override_notice=Role.RESPONDER in caller.roles,
        hold_ttl=timedelta(seconds=settings.hold_ttl_seconds),
    )


@router.post("/{appointment_id}/outcome")
async def record_outcome(
    appointment_id: uuid.UUID, body: AppointmentOutcome, uow: UnitOfWorkDep, caller: Staff
) -> dict[str, Any]:
    """Fulfilled or no-show, recorded by a person (who is kept)."""
    side = (
        types.NoShowSide.Value(f"NO_SHOW_SIDE_{body.missing_side.upper()}")
        if body.missing_side
        else types.NO_SHOW_SIDE_UNSPECIFIED
    )
    return await uc.record_outcome_by_person(
        uow,
        appointment_id,
        site_scope(caller),
        fulfilled=body.outcome == "fulfilled",
        actor=actor_of(caller),
        who=caller.subject,
        missing_side=side,
    )


waitlist_router = APIRouter(prefix="/waitlist", tags=["appointments"])


@waitlist_router.post("", status_code=201)
async def join_waitlist(body: WaitlistCreate, uow: UnitOfWorkDep, caller: Booker) -> dict[str, Any]:
    """Wait for a released slot: it is offered as a hold to the oldest matching entry."""
    command = wl.JoinWaitlist(
        responder_id=body.responder_id,
        site_id=site_of(caller, body.site_id),
        act=act_code(body.act),
        patient_ref=await patient_ref_for_booking(uow, body.patient_id),
        window_start=body.window_start,
        window_end=body.window_end,
        created_by=caller.subject,
    )
    return await wl.join_waitlist(uow, command)


@waitlist_router.get("/{entry_id}")
async def get_waitlist_entry(
    entry_id: uuid.UUID, uow: UnitOfWorkDep, caller: Booker
) -> dict[str, Any]:
    """`offered` with the held appointment to confirm, or still `waiting`."""
    return await wl.read_waitlist_entry(uow, entry_id, site_scope(caller))
