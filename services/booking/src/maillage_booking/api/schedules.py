"""Schedules, duty status and free-slot search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from maillage_booking.api.common import ActName, act_code
from maillage_booking.api.deps import responder_id_of
from maillage_booking.api.schemas import DutyUpdate, ScheduleUpdate, SlotRead
from maillage_booking.domain.errors import DomainError
from maillage_booking.domain.geo import MAX_RADIUS_KM, Point
from maillage_booking.domain.schedule import LocalException, Visibility, WeeklyWindow
from maillage_booking.use_cases.schedules import (
    DefineSchedule,
    Nearby,
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
    near_lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    near_lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    near_site: str | None = None,
    radius_km: Annotated[float | None, Query(gt=0, le=MAX_RADIUS_KM)] = None,
) -> list[SlotRead]:
    """Free slots by specialty, act, département or distance (`radius_km` around
    `near_lat`/`near_lon` or around the site `near_site`), and date range, earliest first."""
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
        near=_nearby(near_lat, near_lon, near_site, radius_km),
    )
    return [
        SlotRead(
            responder_id=s.responder_id,
            specialty_codes=s.specialty_codes,
            start=s.start,
            end=s.end,
            distance_km=None if s.distance_km is None else round(s.distance_km, 2),
        )
        for s in found
    ]


def _nearby(
    lat: float | None, lon: float | None, site_id: str | None, radius_km: float | None
) -> Nearby | None:
    """The distance filter, when asked for: a radius and exactly one origin."""
    has_point = lat is not None or lon is not None
    if radius_km is None:
        if has_point or site_id:
            raise DomainError("radius_km", "a distance search needs radius_km")
        return None
    if has_point and site_id:
        raise DomainError("near_site", "give either near_site or near_lat/near_lon, not both")
    if site_id:
        return Nearby(radius_km, site_id=site_id)
    if lat is None or lon is None:
        field = "near_lat" if lat is None else "near_lon"
        raise DomainError(field, "a distance search needs near_lat and near_lon, or near_site")
    return Nearby(radius_km, point=Point(lat, lon))


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
