"""Schedules and free-slot search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from maillage_booking.db import repositories as repo
from maillage_booking.domain.errors import DomainError, NotFoundError
from maillage_booking.domain.geo import Point, nearest_km
from maillage_booking.domain.schedule import (
    LocalException,
    Period,
    Visibility,
    WeeklyWindow,
    free_slots,
    require_aware,
    rules_document,
    schedule_from_document,
)
from maillage_booking.use_cases.common import utcnow
from maillage_common.db.unit_of_work import UnitOfWork

MAX_SEARCH_DAYS = 31


@dataclass(frozen=True, slots=True)
class DefineSchedule:
    """The whole schedule of a responder, replacing the previous one."""

    responder_id: str
    time_zone: str
    weekly: list[WeeklyWindow]
    exceptions: list[LocalException]
    slot_minutes: dict[int, int]
    buffer_minutes: int
    min_notice_minutes: int
    window_days: int
    visibility: Visibility


async def define_schedule(uow: UnitOfWork, command: DefineSchedule) -> dict[str, Any]:
    """Validate the rules (DST included) and store them; slots are computed on demand."""
    rules = rules_document(
        weekly=command.weekly,
        exceptions=command.exceptions,
        slot_minutes=command.slot_minutes,
        buffer_minutes=command.buffer_minutes,
        min_notice_minutes=command.min_notice_minutes,
        window_days=command.window_days,
        visibility=command.visibility,
        time_zone=command.time_zone,
    )
    async with uow:
        if await repo.responder(uow.session, command.responder_id) is None:
            raise NotFoundError("responder_id", "unknown responder")
        await repo.save_schedule(
            uow.session, command.responder_id, command.time_zone, rules, utcnow()
        )
        await uow.commit()
    return {"responder_id": command.responder_id, "time_zone": command.time_zone, **rules}


async def read_schedule(uow: UnitOfWork, responder_id: str) -> dict[str, Any]:
    async with uow:
        row = await repo.schedule_of(uow.session, responder_id)
    if row is None:
        raise NotFoundError("responder_id", "this responder has no schedule")
    return {"responder_id": responder_id, "time_zone": row.time_zone, **row.rules}


@dataclass(frozen=True, slots=True)
class FreeSlot:
    responder_id: str
    specialty_codes: list[str]
    start: datetime
    end: datetime
    distance_km: float | None = None


@dataclass(frozen=True, slots=True)
class Nearby:
    """Within `radius_km` of a point, or of a site's location (from the directory)."""

    radius_km: float
    point: Point | None = None
    site_id: str | None = None


async def _origin(uow: UnitOfWork, near: Nearby) -> Point:
    if near.point is not None:
        return near.point
    site = await repo.site(uow.session, near.site_id or "")
    if site is None:
        raise DomainError("near_site", "unknown site")
    if site.latitude is None or site.longitude is None:
        raise DomainError("near_site", "the directory has no location for this site")
    return Point(site.latitude, site.longitude)


async def search_free_slots(
    uow: UnitOfWork,
    *,
    act: int,
    specialty: str | None,
    departement: str | None,
    frm: datetime,
    to: datetime,
    limit: int,
    visible: frozenset[Visibility],
    near: Nearby | None = None,
) -> list[FreeSlot]:
    """Free slots of every matching responder, earliest first (the SAS ranking); by distance,
    only responders with a practice location within the radius, ties nearest first."""
    require_aware(frm, "from")
    require_aware(to, "to")
    if to <= frm:
        raise DomainError("to", "to must be after from")
    to = min(to, frm + timedelta(days=MAX_SEARCH_DAYS))
    now = utcnow()
    async with uow:
        origin = await _origin(uow, near) if near is not None else None
        rows = await repo.schedules_for_search(uow.session, specialty, act, departement)
        distances: dict[str, float] = {}
        if near is not None and origin is not None:
            for row in rows:
                km = nearest_km(origin, row.latitudes, row.longitudes)
                if km is not None and km <= near.radius_km:
                    distances[row.responder_id] = km
            rows = [row for row in rows if row.responder_id in distances]
        taken_rows = await repo.taken_ranges(
            uow.session, [r.responder_id for r in rows], frm, to, now
        )
    taken: dict[str, list[Period]] = {}
    for t in taken_rows:
        taken.setdefault(t.responder_id, []).append(Period(t.start_at, t.block_end))
    found: list[FreeSlot] = []
    for row in rows:
        schedule = schedule_from_document(row.time_zone, row.rules)
        if schedule.visibility not in visible or act not in schedule.slot_minutes:
            continue
        for slot in free_slots(schedule, act, frm, to, now, taken.get(row.responder_id, [])):
            found.append(
                FreeSlot(
                    row.responder_id,
                    list(row.specialty_codes),
                    slot.start,
                    slot.end,
                    distances.get(row.responder_id),
                )
            )
    found.sort(key=lambda s: (s.start, s.distance_km or 0.0, s.responder_id))
    return found[:limit]


async def set_duty(uow: UnitOfWork, responder_id: str, on_duty: bool) -> dict[str, object]:
    """On duty: the responder may be offered on-demand requests."""
    async with uow:
        if not await repo.set_on_duty(uow.session, responder_id, on_duty):
            raise NotFoundError("responder_id", "unknown responder")
        await uow.commit()
    return {"responder_id": responder_id, "on_duty": on_duty}
