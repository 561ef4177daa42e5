"""Slot computation from rules, including both DST changes in Europe/Paris."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from maillage_booking.domain.errors import DomainError
from maillage_booking.domain.schedule import (
    LocalException,
    Period,
    Schedule,
    WeeklyWindow,
    candidate_slots,
    check_bookable,
    free_slots,
    resolve_exception,
)

PARIS = ZoneInfo("Europe/Paris")
TELECONSULTATION = 1
SUNDAY = 6


def schedule(*windows: WeeklyWindow, **kwargs: object) -> Schedule:
    kwargs.setdefault("window_days", 366)
    return Schedule(
        time_zone="Europe/Paris",
        weekly=windows,
        slot_minutes={TELECONSULTATION: 30},
        **kwargs,  # type: ignore[arg-type]
    )


def paris(y: int, m: int, d: int, h: int, mi: int = 0, fold: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=PARIS, fold=fold)


LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def test_weekly_window_yields_back_to_back_slots_earliest_first() -> None:
    rules = schedule(WeeklyWindow(0, time(9), time(11)))  # Mondays
    monday = paris(2026, 11, 23, 0)
    slots = candidate_slots(rules, TELECONSULTATION, monday, monday + timedelta(days=1), LONG_AGO)
    assert [s.start for s in slots] == [paris(2026, 11, 23, 9, m) for m in (0, 30)] + [
        paris(2026, 11, 23, 10, m) for m in (0, 30)
    ]


def test_buffer_spaces_slots() -> None:
    rules = schedule(WeeklyWindow(0, time(9), time(10, 10)), buffer_minutes=5)
    monday = paris(2026, 11, 23, 0)
    slots = candidate_slots(rules, TELECONSULTATION, monday, monday + timedelta(days=1), LONG_AGO)
    assert [s.start for s in slots] == [paris(2026, 11, 23, 9), paris(2026, 11, 23, 9, 35)]


def test_spring_forward_gap_window_starts_when_the_clock_exists_again() -> None:
    # 2026-03-29: 02:00 -> 03:00 in Paris. A 02:00-04:00 window really lasts one hour.
    rules = schedule(WeeklyWindow(SUNDAY, time(2), time(4)))
    day = paris(2026, 3, 29, 0)
    slots = candidate_slots(rules, TELECONSULTATION, day, day + timedelta(days=1), LONG_AGO)
    assert [s.start for s in slots] == [paris(2026, 3, 29, 3), paris(2026, 3, 29, 3, 30)]
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)


def test_a_window_opening_inside_the_gap_opens_when_the_clock_exists_again() -> None:
    # 02:30 does not exist on 2026-03-29: the window opens at 03:00, not 03:30.
    rules = schedule(WeeklyWindow(SUNDAY, time(2, 30), time(4)))
    day = paris(2026, 3, 29, 0)
    slots = candidate_slots(rules, TELECONSULTATION, day, day + timedelta(days=1), LONG_AGO)
    assert [s.start for s in slots] == [paris(2026, 3, 29, 3), paris(2026, 3, 29, 3, 30)]


def test_fall_back_repeated_hour_is_covered_twice_with_real_half_hours() -> None:
    # 2026-10-25: 03:00 -> 02:00 in Paris. A 02:00-03:00 window covers both 02:xx hours.
    rules = schedule(WeeklyWindow(SUNDAY, time(2), time(3)))
    day = paris(2026, 10, 25, 0)
    slots = candidate_slots(rules, TELECONSULTATION, day, day + timedelta(days=1), LONG_AGO)
    assert [s.start.astimezone(UTC).strftime("%H:%M") for s in slots] == [
        "00:00",
        "00:30",
        "01:00",
        "01:30",
    ]


def test_a_typed_time_that_does_not_exist_is_rejected_by_name() -> None:
    exception = LocalException("closed", date(2026, 3, 29), time(2, 30), time(5))
    with pytest.raises(DomainError) as error:
        resolve_exception(exception, PARIS, 0)
    assert error.value.field == "exceptions.0.start"
    assert "does not exist" in error.value.reason


def test_a_repeated_time_resolves_earliest_for_start_latest_for_end() -> None:
    exception = LocalException("closed", date(2026, 10, 25), time(2, 30), time(2, 45))
    period = resolve_exception(exception, PARIS, 0)
    assert period.end - period.start == timedelta(hours=1, minutes=15)


def test_closed_exception_removes_slots_and_open_adds_them() -> None:
    closed = Period(paris(2026, 11, 23, 9), paris(2026, 11, 23, 10))
    opened = Period(paris(2026, 11, 24, 14), paris(2026, 11, 24, 15))
    rules = schedule(WeeklyWindow(0, time(9), time(11)), closed=(closed,), opened=(opened,))
    monday = paris(2026, 11, 23, 0)
    slots = candidate_slots(rules, TELECONSULTATION, monday, monday + timedelta(days=2), LONG_AGO)
    assert [s.start for s in slots] == [
        paris(2026, 11, 23, 10),
        paris(2026, 11, 23, 10, 30),
        paris(2026, 11, 24, 14),
        paris(2026, 11, 24, 14, 30),
    ]


def test_notice_window_and_taken_ranges_filter_slots() -> None:
    rules = schedule(WeeklyWindow(0, time(9), time(11)), min_notice_minutes=60, window_days=1)
    now = paris(2026, 11, 23, 8, 15)
    taken = [Period(paris(2026, 11, 23, 10), paris(2026, 11, 23, 10, 30))]
    slots = free_slots(rules, TELECONSULTATION, now, now + timedelta(days=7), now, taken)
    assert [s.start for s in slots] == [paris(2026, 11, 23, 9, 30), paris(2026, 11, 23, 10, 30)]


@pytest.mark.parametrize(
    ("start", "end", "field", "reason"),
    [
        (paris(2026, 11, 23, 9), paris(2026, 11, 23, 9), "end", "after start"),
        (paris(2026, 11, 16, 9), paris(2026, 11, 16, 9, 30), "start", "past"),
        (paris(2026, 11, 23, 12), paris(2026, 11, 23, 12, 30), "start", "availability"),
        (paris(2026, 11, 23, 9), paris(2026, 11, 23, 9, 45), "end", "length"),
        (datetime(2026, 11, 23, 9), datetime(2026, 11, 23, 9, 30), "start", "naive"),
    ],
)
def test_check_bookable_names_the_reason(
    start: datetime, end: datetime, field: str, reason: str
) -> None:
    rules = schedule(WeeklyWindow(0, time(9), time(11)))
    with pytest.raises(DomainError) as error:
        check_bookable(rules, TELECONSULTATION, start, end, paris(2026, 11, 20, 8))
    assert error.value.field == field
    assert reason in error.value.reason


def test_check_bookable_accepts_a_real_slot() -> None:
    rules = schedule(WeeklyWindow(0, time(9), time(11)))
    check_bookable(
        rules,
        TELECONSULTATION,
        paris(2026, 11, 23, 9, 30),
        paris(2026, 11, 23, 10),
        paris(2026, 11, 20, 8),
    )
