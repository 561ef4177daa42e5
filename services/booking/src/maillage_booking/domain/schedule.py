"""Schedules and free slots, computed from rules in a named time zone (never pre-generated).

Wall-clock rules meet DST explicitly:
- a local time that does not exist (spring-forward gap) is rejected where a person typed it
  (`resolve_local`), and a weekly window bound falling in the gap starts/ends at the gap's end;
- a local time that exists twice (fall-back) resolves to the earlier instant for a start and
  to the later one for an end, so a window covers both occurrences of the repeated hour.
Slots are stepped in absolute time, so every slot lasts exactly its length.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maillage_booking.domain.errors import DomainError


class Visibility(StrEnum):
    PUBLIC = "public"
    PROFESSIONALS = "professionals"
    REGULATOR = "regulator"


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """Recurring availability: every `weekday` (0 = Monday) from `start` to `end`, wall clock."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Period:
    """An absolute interval [start, end)."""

    start: datetime
    end: datetime

    def overlaps(self, other: Period) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class Schedule:
    """The booking rules of one responder."""

    time_zone: str
    weekly: tuple[WeeklyWindow, ...]
    slot_minutes: dict[int, int]
    closed: tuple[Period, ...] = ()
    opened: tuple[Period, ...] = ()
    buffer_minutes: int = 0
    min_notice_minutes: int = 0
    window_days: int = 60
    visibility: Visibility = Visibility.PUBLIC
    zone: ZoneInfo = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", zone_named(self.time_zone))

    def slot_length(self, act: int) -> timedelta:
        minutes = self.slot_minutes.get(act)
        if minutes is None:
            raise DomainError("act", "the responder's schedule has no slot length for this act")
        return timedelta(minutes=minutes)


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise DomainError("time_zone", f"unknown time zone {name!r}") from error


def require_aware(value: datetime, field_name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise DomainError(field_name, "datetime must carry a time-zone offset (naive given)")
    return value


def is_nonexistent(local: datetime, zone: ZoneInfo) -> bool:
    """True when the wall-clock time falls in a DST gap (it never shows on a clock there)."""
    aware = local.replace(tzinfo=zone)
    round_trip = aware.astimezone(UTC).astimezone(zone)
    return round_trip.replace(tzinfo=None) != local


def is_ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    """True when the wall-clock time happens twice (the repeated hour of a DST fall-back)."""
    first = local.replace(tzinfo=zone, fold=0).utcoffset()
    second = local.replace(tzinfo=zone, fold=1).utcoffset()
    return first != second


def resolve_local(
    local: datetime, zone: ZoneInfo, *, field_name: str, end: bool = False
) -> datetime:
    """A typed wall-clock time as an instant: gaps rejected, repeated hours resolved explicitly."""
    if is_nonexistent(local, zone):
        raise DomainError(
            field_name, f"{local.isoformat()} does not exist in {zone.key} (DST change)"
        )
    return local.replace(tzinfo=zone, fold=1 if end and is_ambiguous(local, zone) else 0)


def when_the_clock_exists_again(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall time in the spring-forward gap stands for: the first wall time that
    exists after it (03:00 for 02:30 in Paris). fold=0 would shift it by the gap (03:30)."""
    # Zone transitions fall on whole minutes.
    existing = local.replace(second=0, microsecond=0)
    while is_nonexistent(existing, zone):
        existing += timedelta(minutes=1)
    return existing.replace(tzinfo=zone).astimezone(UTC)


@functools.lru_cache(maxsize=8192)
def _window_bound(day: date, at: time, zone: ZoneInfo, *, end: bool) -> datetime:
    # Cached: pure, and the same few windows of the same days recur in every booking and
    # search, while resolving DST costs several zone conversions each time.
    local = datetime.combine(day, at)
    if is_nonexistent(local, zone):
        return when_the_clock_exists_again(local, zone)
    fold = 1 if end and is_ambiguous(local, zone) else 0
    return local.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _open_periods(schedule: Schedule, frm: datetime, to: datetime) -> list[Period]:
    zone = schedule.zone
    # A window may run past midnight, so the day before `frm` counts; a window of a local day
    # after `to`'s starts after `to` and cannot hold a slot of [frm, to).
    first = frm.astimezone(zone).date() - timedelta(days=1)
    last = to.astimezone(zone).date()
    periods: list[Period] = []
    day = first
    while day <= last:
        for window in schedule.weekly:
            if window.weekday == day.weekday():
                end_day = day if window.end > window.start else day + timedelta(days=1)
                start = _window_bound(day, window.start, zone, end=False)
                finish = _window_bound(end_day, window.end, zone, end=True)
                if finish > start:
                    periods.append(Period(start, finish))
        day += timedelta(days=1)
    periods.extend(schedule.opened)
    return periods


def candidate_slots(
    schedule: Schedule, act: int, frm: datetime, to: datetime, now: datetime
) -> list[Period]:
    """Every slot the rules open in [frm, to), honouring notice and window, earliest first."""
    length = schedule.slot_length(act)
    step = length + timedelta(minutes=schedule.buffer_minutes)
    earliest = max(frm, now + timedelta(minutes=schedule.min_notice_minutes))
    latest = min(to, now + timedelta(days=schedule.window_days))
    slots: set[Period] = set()
    for period in _open_periods(schedule, earliest, latest):
        start = period.start
        if start < earliest:
            # Jump to the first slot of the period's grid at or after `earliest`.
            start += -((start - earliest) // step) * step
        while start + length <= period.end and start + length <= latest:
            slot = Period(start, start + length)
            if not any(slot.overlaps(c) for c in schedule.closed):
                slots.add(slot)
            start += step
    return sorted(slots, key=lambda s: s.start)


def free_slots(
    schedule: Schedule,
    act: int,
    frm: datetime,
    to: datetime,
    now: datetime,
    taken: list[Period],
) -> list[Period]:
    """Candidate slots minus those overlapping a taken (blocking) range, earliest first."""
    return [s for s in candidate_slots(schedule, act, frm, to, now) if not _collides(s, taken)]


def _collides(slot: Period, taken: list[Period]) -> bool:
    return any(slot.overlaps(t) for t in taken)


def check_bookable(
    schedule: Schedule, act: int, start: datetime, end: datetime, now: datetime
) -> None:
    """Raise naming the reason when [start, end) is not one of the schedule's slots."""
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise DomainError("end", "end must be after start")
    if start < now:
        raise DomainError("start", "the slot is in the past")
    if start < now + timedelta(minutes=schedule.min_notice_minutes):
        raise DomainError("start", "the slot is within the minimum booking notice")
    if start > now + timedelta(days=schedule.window_days):
        raise DomainError("start", "the slot is beyond the booking window")
    if end - start != schedule.slot_length(act):
        raise DomainError("end", "the slot length does not match the act's slot length")
    wanted = Period(start.astimezone(UTC), end.astimezone(UTC))
    if wanted not in candidate_slots(schedule, act, wanted.start, wanted.end, now):
        raise DomainError("start", "the slot is outside the responder's availability")


@dataclass(frozen=True, slots=True)
class LocalException:
    """A one-off change typed in wall-clock time: `closed` (leave) or `open` (extra opening)."""

    kind: str
    day: date
    start: time
    end: time
    end_day: date | None = None


def resolve_exception(exception: LocalException, zone: ZoneInfo, index: int) -> Period:
    """The instants of a typed exception; a time missing on a DST day is rejected by name."""
    prefix = f"exceptions.{index}"
    start = resolve_local(
        datetime.combine(exception.day, exception.start), zone, field_name=f"{prefix}.start"
    )
    end = resolve_local(
        datetime.combine(exception.end_day or exception.day, exception.end),
        zone,
        field_name=f"{prefix}.end",
        end=True,
    )
    if end <= start:
        raise DomainError(f"{prefix}.end", "end must be after start")
    return Period(start.astimezone(UTC), end.astimezone(UTC))


def rules_document(
    *,
    weekly: list[WeeklyWindow],
    exceptions: list[LocalException],
    slot_minutes: dict[int, int],
    buffer_minutes: int,
    min_notice_minutes: int,
    window_days: int,
    visibility: Visibility,
    time_zone: str,
) -> dict[str, object]:
    """Validate typed rules and turn them into the stored document (instants resolved once)."""
    zone = zone_named(time_zone)
    for i, window in enumerate(weekly):
        if not 0 <= window.weekday <= 6:
            raise DomainError(f"weekly.{i}.weekday", "weekday is 0 (Monday) to 6 (Sunday)")
        if window.start == window.end:
            raise DomainError(f"weekly.{i}.end", "end must differ from start")
    if not slot_minutes or any(m <= 0 for m in slot_minutes.values()):
        raise DomainError("slot_minutes", "give a positive slot length for at least one act")
    periods = [resolve_exception(e, zone, i) for i, e in enumerate(exceptions)]
    return {
        "weekly": [
            {"weekday": w.weekday, "start": w.start.isoformat(), "end": w.end.isoformat()}
            for w in weekly
        ],
        "closed": [
            _period_doc(p) for p, e in zip(periods, exceptions, strict=True) if e.kind == "closed"
        ],
        "opened": [
            _period_doc(p) for p, e in zip(periods, exceptions, strict=True) if e.kind == "open"
        ],
        "slot_minutes": {str(act): minutes for act, minutes in slot_minutes.items()},
        "buffer_minutes": buffer_minutes,
        "min_notice_minutes": min_notice_minutes,
        "window_days": window_days,
        "visibility": visibility.value,
    }


def _period_doc(period: Period) -> dict[str, str]:
    return {"start": period.start.isoformat(), "end": period.end.isoformat()}


def _period(doc: dict[str, str]) -> Period:
    return Period(datetime.fromisoformat(doc["start"]), datetime.fromisoformat(doc["end"]))


def schedule_from_document(time_zone: str, rules: dict[str, object]) -> Schedule:
    """The domain schedule from its stored document."""
    weekly = rules["weekly"]
    closed = rules["closed"]
    opened = rules["opened"]
    slots = rules["slot_minutes"]
    assert isinstance(weekly, list)
    assert isinstance(closed, list)
    assert isinstance(opened, list)
    assert isinstance(slots, dict)
    return Schedule(
        time_zone=time_zone,
        weekly=tuple(
            WeeklyWindow(w["weekday"], time.fromisoformat(w["start"]), time.fromisoformat(w["end"]))
            for w in weekly
        ),
        slot_minutes={int(act): int(minutes) for act, minutes in slots.items()},
        closed=tuple(_period(p) for p in closed),
        opened=tuple(_period(p) for p in opened),
        buffer_minutes=int(str(rules["buffer_minutes"])),
        min_notice_minutes=int(str(rules["min_notice_minutes"])),
        window_days=int(str(rules["window_days"])),
        visibility=Visibility(str(rules["visibility"])),
    )
