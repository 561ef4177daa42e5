"""A site's opening hours (from the directory) and the rule that a cabin is only booked
while its site is open.

Hours are wall-clock ranges in a named zone (Europe/Paris): weekly ranges per day of the
week, and dated exceptions whose ranges replace the week's for their date (no ranges: closed
that day). "HH:MM" times; "24:00" closes at the next midnight. Ranges are resolved to instants
per local date, so DST changes are honoured:
- a bound in the spring-forward gap opens/closes when the clock exists again;
- a bound that happens twice (fall-back) is the earlier instant for an opening and the later
  one for a closing, so a range covers both occurrences of the repeated hour.

Hours that cannot be interpreted (none at all, only a free-text note, a malformed time, an
unknown day or zone) are *unknown*: nothing is refused on their account.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maillage_booking.domain.errors import DomainError
from maillage_booking.domain.schedule import (
    Period,
    is_ambiguous,
    is_nonexistent,
    when_the_clock_exists_again,
)

DEFAULT_ZONE = "Europe/Paris"
DAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIDNIGHT_MINUTES = 24 * 60
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


class UninterpretableHoursError(ValueError):
    """The hours cannot be read as structured ranges (they are then treated as unknown)."""


@dataclass(frozen=True, slots=True)
class LocalRange:
    """Open from `opens` to `closes`, minutes after local midnight (`closes` ≤ 1440)."""

    opens: int
    closes: int


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Structured opening hours. `weekly` is None when the site gives no weekly ranges: days
    without an exception are then of unknown hours (never refused)."""

    zone: ZoneInfo
    weekly: tuple[tuple[LocalRange, ...], ...] | None  # index 0 = Monday
    exceptions: Mapping[date, tuple[LocalRange, ...]]

    def ranges_on(self, day: date) -> tuple[LocalRange, ...] | None:
        """The local ranges of `day` (empty: closed), or None when unknown."""
        if day in self.exceptions:
            return self.exceptions[day]
        if self.weekly is None:
            return None
        return self.weekly[day.weekday()]


def _minutes(value: object) -> int:
    if not isinstance(value, str) or not (match := _HHMM.match(value)):
        raise UninterpretableHoursError(f"not an HH:MM time: {value!r}")
    minutes = int(match[1]) * 60 + int(match[2])
    if minutes > MIDNIGHT_MINUTES:
        raise UninterpretableHoursError(f"past midnight: {value!r}")
    return minutes


def _range(opens: object, closes: object) -> LocalRange:
    start, end = _minutes(opens), _minutes(closes)
    if start >= MIDNIGHT_MINUTES or end <= start:
        raise UninterpretableHoursError(f"not a range within one day: {opens!r}-{closes!r}")
    return LocalRange(start, end)


def _sorted(ranges: Sequence[LocalRange]) -> tuple[LocalRange, ...]:
    return tuple(sorted(set(ranges), key=lambda r: (r.opens, r.closes)))


def parse_opening_hours(document: Mapping[str, Any] | None) -> OpeningHours | None:
    """Structured hours from the stored document (the directory's `OpeningHours` as JSON), or
    None when they are unknown: no document, no ranges nor exceptions (a note only).
    Raises `UninterpretableHoursError` when the document is malformed."""
    if not document:
        return None
    weekly_doc = document.get("weekly") or []
    exceptions_doc = document.get("exceptions") or []
    if not weekly_doc and not exceptions_doc:
        return None  # nothing structured (perhaps a free-text note): unknown
    name = document.get("timezone") or DEFAULT_ZONE
    try:
        zone = ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UninterpretableHoursError(f"unknown time zone {name!r}") from error
    per_day: list[list[LocalRange]] = [[] for _ in DAY_CODES]
    for entry in weekly_doc:
        days = entry.get("days") or []
        if not days:
            raise UninterpretableHoursError("a weekly range names no day")
        opening = _range(entry.get("opens"), entry.get("closes"))
        for code in days:
            if code not in DAY_CODES:
                raise UninterpretableHoursError(f"unknown day {code!r}")
            per_day[DAY_CODES.index(code)].append(opening)
    exceptions: dict[date, list[LocalRange]] = {}
    for entry in exceptions_doc:
        try:
            day = date.fromisoformat(str(entry.get("date")))
        except ValueError as error:
            raise UninterpretableHoursError(f"not a date: {entry.get('date')!r}") from error
        ranges = exceptions.setdefault(day, [])
        ranges.extend(_range(r.get("opens"), r.get("closes")) for r in entry.get("ranges") or [])
    return OpeningHours(
        zone=zone,
        weekly=tuple(_sorted(d) for d in per_day) if weekly_doc else None,
        exceptions=MappingProxyType({day: _sorted(r) for day, r in exceptions.items()}),
    )


@functools.lru_cache(maxsize=1024)
def parse_opening_hours_json(document: str | None) -> OpeningHours | None:
    """`parse_opening_hours` of the document as JSON text, remembered (the hours of the same
    sites are read by every booking of their cabins)."""
    return parse_opening_hours(json.loads(document) if document is not None else None)


@functools.lru_cache(maxsize=8192)
def _instant(day: date, minutes: int, zone: ZoneInfo, *, closing: bool) -> datetime:
    # Cached: pure, and the same few ranges of the same days recur in every cabin booking,
    # while resolving DST costs several zone conversions each time.
    if minutes == MIDNIGHT_MINUTES:
        day, minutes = day + timedelta(days=1), 0
    local = datetime.combine(day, time(minutes // 60, minutes % 60))
    if is_nonexistent(local, zone):
        return when_the_clock_exists_again(local, zone)
    fold = 1 if closing and is_ambiguous(local, zone) else 0
    return local.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def open_periods(hours: OpeningHours, day: date) -> list[Period] | None:
    """The instants the site is open on local `day`, touching ranges merged (None: unknown)."""
    ranges = hours.ranges_on(day)
    if ranges is None:
        return None
    merged: list[Period] = []
    for r in ranges:
        period = Period(
            _instant(day, r.opens, hours.zone, closing=False),
            _instant(day, r.closes, hours.zone, closing=True),
        )
        if merged and period.start <= merged[-1].end:
            last = merged.pop()
            period = Period(last.start, max(last.end, period.end))
        merged.append(period)
    return merged


def is_open_throughout(hours: OpeningHours | None, start: datetime, end: datetime) -> bool:
    """True when [start, end) lies within one opening range of the local date of `start`
    (ranges that touch count as one, also a range closing at 24:00 and the next day's
    opening at 00:00), or when the hours of that date are unknown."""
    if hours is None:
        return True
    day = start.astimezone(hours.zone).date()
    periods = open_periods(hours, day)
    if periods is None:
        return True
    following = open_periods(hours, day + timedelta(days=1)) or []
    for period in following:
        if periods and period.start <= periods[-1].end:
            periods[-1] = Period(periods[-1].start, max(periods[-1].end, period.end))
    return any(p.start <= start and end <= p.end for p in periods)


def check_site_open(
    hours: OpeningHours | None, start: datetime, end: datetime, site_name: str
) -> None:
    """Refuse (naming `start`) a slot of a site's cabin when the site is not open throughout
    [start, end); unknown hours never refuse."""
    if not is_open_throughout(hours, start, end):
        raise DomainError("start", f"the site {site_name} is closed at that time")


def opening_hours_document(
    *,
    timezone: str,
    weekly: Sequence[tuple[Sequence[str], str, str]],
    exceptions: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    note: str,
) -> dict[str, Any]:
    """The stored form of the directory's `OpeningHours` (kept as published)."""
    return {
        "timezone": timezone or DEFAULT_ZONE,
        "weekly": [
            {"days": list(days), "opens": opens, "closes": closes} for days, opens, closes in weekly
        ],
        "exceptions": [
            {"date": day, "ranges": [{"opens": o, "closes": c} for o, c in ranges]}
            for day, ranges in exceptions
        ],
        "note": note,
    }
