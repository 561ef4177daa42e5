"""A site's opening hours: weekly ranges in Paris wall-clock time, plus dated exceptions.

The shape mirrors FHIR R4 `Location.availableTime` (days of week + start/end time) so the
FHIR view is a direct mapping; an exception either closes a date (no ranges) or replaces
that date's ranges. Times are "HH:MM" local to Europe/Paris (the wall clock a patient
reads on the door), never UTC: a summer-time change must not move the opening hour.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maillage_directory.domain.errors import FieldError, InvalidValueError

TIMEZONE = "Europe/Paris"
PARIS = ZoneInfo(TIMEZONE)
# 24:00 may close a range (open until midnight); it never opens one.
_OPENS = r"^([01]\d|2[0-3]):[0-5]\d$"
_CLOSES = r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"
MINUTES_PER_DAY = 24 * 60


class Weekday(StrEnum):
    """FHIR `days-of-week` codes, Monday first (ISO order)."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEK = list(Weekday)


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TimeRange(_Shape):
    opens: str = Field(pattern=_OPENS, examples=["08:30"])
    closes: str = Field(pattern=_CLOSES, examples=["12:00"])


class WeeklyHours(TimeRange):
    """Open from `opens` to `closes` on each of `days` (list one entry per range)."""

    days: list[Weekday] = Field(min_length=1, max_length=7)


class DateException(_Shape):
    """A date that departs from the week: closed (no ranges) or open only in `ranges`."""

    date: date
    ranges: list[TimeRange] = Field(default_factory=list, max_length=10)
    reason: str = Field(default="", max_length=200)


class OpeningHours(_Shape):
    timezone: Literal["Europe/Paris"] = "Europe/Paris"
    weekly: list[WeeklyHours] = Field(default_factory=list, max_length=70)
    exceptions: list[DateException] = Field(default_factory=list, max_length=400)
    note: str = Field(default="", max_length=500, description="free remark, e.g. on appointment")


def minutes(clock: str) -> int:
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


def _clock(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


def _overlaps(field: str, ranges: Iterable[tuple[int, int, str]], where: str) -> list[FieldError]:
    """Errors for ranges (start, end, field) that overlap; touching ranges are fine."""
    errors = []
    previous: tuple[int, int, str] | None = None
    for current in sorted(ranges):
        if previous is not None and current[0] < previous[1]:
            errors.append(FieldError(current[2], f"overlaps {previous[2]} {where}"))
        if previous is None or current[1] > previous[1]:
            previous = current
    return errors


def _range_errors(field: str, opens: str, closes: str) -> list[FieldError]:
    if minutes(closes) <= minutes(opens):
        return [FieldError(f"{field}.closes", f"closes ({closes}) must be after opens ({opens})")]
    return []


def opening_hours_errors(
    hours: OpeningHours, field: str = "opening_hours"
) -> tuple[OpeningHours, list[FieldError]]:
    """Check (close after open, no overlap, one exception per date) and normalise the order."""
    errors: list[FieldError] = []
    per_day: dict[Weekday, list[tuple[int, int, str]]] = {day: [] for day in WEEK}
    weekly = []
    for index, entry in enumerate(hours.weekly):
        name = f"{field}.weekly.{index}"
        errors += _range_errors(name, entry.opens, entry.closes)
        days = sorted(set(entry.days), key=WEEK.index)
        for day in days:
            per_day[day].append((minutes(entry.opens), minutes(entry.closes), name))
        weekly.append(entry.model_copy(update={"days": days}))
    for day, ranges in per_day.items():
        errors += _overlaps(field, ranges, f"on {day.value}")
    seen: dict[date, str] = {}
    exceptions = []
    for index, exception in enumerate(hours.exceptions):
        name = f"{field}.exceptions.{index}"
        if exception.date in seen:
            reason = f"{exception.date} already has {seen[exception.date]}"
            errors.append(FieldError(f"{name}.date", reason))
        seen[exception.date] = name
        spans = []
        for position, span in enumerate(exception.ranges):
            span_name = f"{name}.ranges.{position}"
            errors += _range_errors(span_name, span.opens, span.closes)
            spans.append((minutes(span.opens), minutes(span.closes), span_name))
        errors += _overlaps(field, spans, f"on {exception.date}")
        ordered = sorted(exception.ranges, key=lambda span: minutes(span.opens))
        exceptions.append(exception.model_copy(update={"ranges": ordered}))
    weekly.sort(key=lambda entry: (WEEK.index(entry.days[0]), minutes(entry.opens)))
    exceptions.sort(key=lambda exception: exception.date)
    return hours.model_copy(update={"weekly": weekly, "exceptions": exceptions}), errors


def ranges_on(hours: OpeningHours, day: date) -> list[tuple[int, int]]:
    """The (opens, closes) minutes of `day`, its exception winning over the week."""
    for exception in hours.exceptions:
        if exception.date == day:
            return [(minutes(r.opens), minutes(r.closes)) for r in exception.ranges]
    weekday = WEEK[day.weekday()]
    return sorted(
        (minutes(entry.opens), minutes(entry.closes))
        for entry in hours.weekly
        if weekday in entry.days
    )


def is_open(hours: OpeningHours, moment: datetime) -> bool:
    """Whether the site is open at the aware `moment` (read on the Paris wall clock)."""
    local = moment.astimezone(PARIS)
    now = local.hour * 60 + local.minute
    return any(start <= now < end for start, end in ranges_on(hours, local.date()))


# --- FHIR R4 Location.availableTime / notAvailable -------------------------------------


def _fhir_time(clock: str) -> str:
    # FHIR `time` has no 24:00: the last second of the day stands for midnight.
    return "23:59:59" if clock == "24:00" else f"{clock}:00"


def available_time(hours: OpeningHours) -> list[dict[str, Any]]:
    result = []
    for entry in hours.weekly:
        item: dict[str, Any] = {"daysOfWeek": [day.value for day in entry.days]}
        if entry.opens == "00:00" and entry.closes == "24:00":
            item["allDay"] = True
        else:
            item["availableStartTime"] = _fhir_time(entry.opens)
            item["availableEndTime"] = _fhir_time(entry.closes)
        result.append(item)
    return result


def _instant(day: date, clock: int) -> str:
    moment = datetime.combine(day, time(), PARIS) + timedelta(minutes=clock)
    # Re-localise: adding minutes to an aware datetime keeps the start-of-day offset.
    return moment.astimezone(PARIS).isoformat()


def not_available(hours: OpeningHours) -> list[dict[str, Any]]:
    """Each exception as the periods of its date when the site is closed."""
    result = []
    for exception in hours.exceptions:
        description = exception.reason or (
            "fermé" if not exception.ranges else "horaires exceptionnels"
        )
        cursor = 0
        gaps = []
        for span in exception.ranges:
            if minutes(span.opens) > cursor:
                gaps.append((cursor, minutes(span.opens)))
            cursor = max(cursor, minutes(span.closes))
        if cursor < MINUTES_PER_DAY:
            gaps.append((cursor, MINUTES_PER_DAY))
        result += [
            {
                "description": description,
                "during": {
                    "start": _instant(exception.date, start),
                    "end": _instant(exception.date, end),
                },
            }
            for start, end in gaps
        ]
    return result


# --- OpenStreetMap `opening_hours` text (CSV imports, rows written before 2026.11) ---------

_OSM_DAYS = {"Mo": 0, "Tu": 1, "We": 2, "Th": 3, "Fr": 4, "Sa": 5, "Su": 6}
_OSM_RULE = re.compile(
    r"^(?P<days>[A-Za-z][A-Za-z,\- ]*?)\s+(?P<times>\d.*|off|closed)$", re.IGNORECASE
)
_OSM_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _osm_days(text: str) -> list[Weekday]:
    days: list[Weekday] = []
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _OSM_DAYS or (last and last not in _OSM_DAYS):
            raise InvalidValueError(f"unknown day {part!r} (use Mo Tu We Th Fr Sa Su)")
        start, end = _OSM_DAYS[first], _OSM_DAYS[last or first]
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
        days += [WEEK[index] for index in span]
    return days


def _osm_span(text: str) -> TimeRange:
    matched = _OSM_SPAN.match(text.strip())
    if matched is None:
        raise InvalidValueError(f"unreadable time range {text.strip()!r} (use 08:00-12:00)")
    h1, m1, h2, m2 = (int(group) for group in matched.groups())
    try:
        return TimeRange(opens=_clock(h1 * 60 + m1), closes=_clock(h2 * 60 + m2))
    except ValidationError as error:
        raise InvalidValueError(f"no such time in {text.strip()!r}") from error


def parse_osm(text: str) -> OpeningHours:
    """The common subset of OSM `opening_hours`: `Mo-Fr 08:00-12:00,14:00-18:00; Sa off`,
    and `24/7`. Anything else raises InvalidValueError (callers keep it as a note)."""
    text = text.strip()
    if text == "24/7":
        return OpeningHours(weekly=[WeeklyHours(days=WEEK, opens="00:00", closes="24:00")])
    weekly: list[WeeklyHours] = []
    for rule in filter(None, (part.strip() for part in text.split(";"))):
        matched = _OSM_RULE.match(rule)
        if matched is None:
            raise InvalidValueError(f"unreadable rule {rule!r} (use 'Mo-Fr 08:00-12:00')")
        days = _osm_days(matched["days"])
        times = matched["times"].strip()
        # In OSM a later rule for the same day replaces the earlier one.
        weekly = [
            entry.model_copy(update={"days": [d for d in entry.days if d not in days]})
            for entry in weekly
        ]
        weekly = [entry for entry in weekly if entry.days]
        if times.lower() in ("off", "closed"):
            continue
        for span_text in times.split(","):
            span = _osm_span(span_text)
            weekly.append(WeeklyHours(days=days, opens=span.opens, closes=span.closes))
    return OpeningHours(weekly=weekly)


def to_osm(hours: OpeningHours) -> str:
    """The weekly part as OSM text (exceptions are dropped): for the migration's downgrade."""
    per_day: dict[Weekday, list[str]] = {day: [] for day in WEEK}
    for entry in hours.weekly:
        for day in entry.days:
            per_day[day].append(f"{entry.opens}-{entry.closes}")
    osm = {value: key for key, value in _OSM_DAYS.items()}
    return "; ".join(
        f"{osm[WEEK.index(day)]} {','.join(sorted(spans))}"
        for day, spans in per_day.items()
        if spans
    )
