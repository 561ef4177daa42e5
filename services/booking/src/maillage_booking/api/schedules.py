"""Schedules, duty status and free-slot search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from maillage_booking.api.common import ActName, act_code
from maillage_booking.api.deps import responder_id_of
from maillage_booking.api.schemas import DutyUpdate, ScheduleUpdate, SlotRead
from maillage_booking.domain.schedule import LocalException, Visibility, WeeklyWindow
from maillage_booking.use_cases.schedules import (
    DefineSchedule,
    define_schedule,
    read_schedule,
    search_free_slots,
    set_duty,
)
from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem

router = APIRouter(tags=["schedules"])


async def _may_edit(caller: Principal, uow: UnitOfWorkDep, responder_id: str) -> None:
    if Role.COORDINATOR in caller.roles:
        return
    if await responder_id_of(caller, uow) != responder_id:
        raise Problem(403, "Forbidden", "a responder edits only their own schedule")


@router.put("/responders/{responder_id}/schedule")
async def put_schedule(
    responder_id: str,
    body: ScheduleUpdate,
    uow: UnitOfWorkDep,
    caller: Annotated[Principal, requires(Role.RESPONDER, Role.COORDINATOR)],
) -> dict[str, object]:
    """Replace a responder's schedule (recurring weekly windows plus exceptions)."""
    await _may_edit(caller, uow, responder_id)
    command = DefineSchedule(
        responder_id=responder_id,
        time_zone=body.time_zone,
        weekly=[WeeklyWindow(w.weekday, w.start, w.end) for w in body.weekly],
        exceptions=[
            LocalException(e.kind, e.date, e.start, e.end, e.end_date) for e in body.exceptions
        ],
        slot_minutes={act_code(a): m for a, m in body.slot_minutes.items()},
        buffer_minutes=body.buffer_minutes,
        min_notice_minutes=body.min_notice_minutes,
        window_days=body.window_days,
        visibility=Visibility(body.visibility),
    )
    return await define_schedule(uow, command)


@router.get("/responders/{responder_id}/schedule")
async def get_schedule(
    responder_id: str,
    uow: UnitOfWorkDep,
    caller: Annotated[
        Principal, requires(Role.RESPONDER, Role.COORDINATOR, Role.NURSE, Role.KIOSK)
    ],
) -> dict[str, object]:
    return await read_schedule(uow, responder_id)


@router.get("/slots")
async def free_slots(
    uow: UnitOfWorkDep,
    caller: Annotated[
        Principal, requires(Role.NURSE, Role.KIOSK, Role.COORDINATOR, Role.RESPONDER, Role.SERVICE)
    ],
    start: Annotated[AwareDatetime, Query(alias="from")],
    end: Annotated[AwareDatetime, Query(alias="to")],
    act: ActName = "teleconsultation",
    specialty: str | None = None,
    departement: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[SlotRead]:
    """Free slots by specialty, act, département and date range, earliest first."""
    visible = {Visibility.PUBLIC}
    if caller.has_any(frozenset({Role.NURSE, Role.RESPONDER, Role.COORDINATOR, Role.SERVICE})):
        visible.add(Visibility.PROFESSIONALS)
    if caller.has_any(frozenset({Role.COORDINATOR, Role.SERVICE})):
        visible.add(Visibility.REGULATOR)
    found = await search_free_slots(
        uow,
        act=act_code(act),
        specialty=specialty,
        departement=departement,
        frm=start,
        to=end,
        limit=limit,
        visible=frozenset(visible),
    )
    return [
        SlotRead(
            responder_id=s.responder_id, specialty_codes=s.specialty_codes, start=s.start, end=s.end
        )
        for s in found
    ]


@router.put("/responders/me/duty")
async def put_my_duty(
    body: DutyUpdate,
    uow: UnitOfWorkDep,
    caller: Annotated[Principal, requires(Role.RESPONDER)],
) -> dict[str, object]:
    """A responder goes on or off duty for on-demand requests."""
    responder_id = await responder_id_of(caller, uow)
    return await set_duty(uow, responder_id, body.on_duty)


@router.put("/responders/{responder_id}/duty")
async def put_duty(
    responder_id: str,
    body: DutyUpdate,
    uow: UnitOfWorkDep,
    caller: Annotated[Principal, requires(Role.COORDINATOR)],
) -> dict[str, object]:
    return await set_duty(uow, responder_id, body.on_duty)
