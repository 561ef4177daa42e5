"""A site's opening hours: a cabin is booked only while its site is open (DST included)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from maillage_booking.domain.errors import DomainError
from maillage_booking.domain.opening_hours import (
    OpeningHours,
    UninterpretableHoursError,
    check_site_open,
    is_open_throughout,
    opening_hours_document,
    parse_opening_hours,
)

PARIS = ZoneInfo("Europe/Paris")
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def paris(y: int, m: int, d: int, h: int, mi: int = 0, fold: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=PARIS, fold=fold)


def hours(
    weekly: list[tuple[list[str], str, str]] | None = None,
    exceptions: list[tuple[str, list[tuple[str, str]]]] | None = None,
    note: str = "",
) -> OpeningHours:
    parsed = parse_opening_hours(
        opening_hours_document(
            timezone="Europe/Paris",
            weekly=weekly or [],
            exceptions=exceptions or [],
            note=note,
        )
    )
    assert parsed is not None
    return parsed


# 2026-11-23 is a Monday.
WEEKDAYS = hours(
    [
        (["mon", "tue", "wed", "thu", "fri"], "08:00", "12:00"),
        (["mon", "tue", "wed", "thu", "fri"], "14:00", "18:00"),
    ]
)


@pytest.mark.parametrize(
    ("start", "end", "open_"),
    [
        (paris(2026, 11, 23, 8), paris(2026, 11, 23, 8, 30), True),
        (paris(2026, 11, 23, 11, 30), paris(2026, 11, 23, 12), True),  # ends at closing
        (paris(2026, 11, 23, 11, 45), paris(2026, 11, 23, 12, 15), False),  # runs past it
        (paris(2026, 11, 23, 12, 30), paris(2026, 11, 23, 13), False),  # lunch break
        (paris(2026, 11, 23, 7, 45), paris(2026, 11, 23, 8, 15), False),  # before opening
        (paris(2026, 11, 28, 10), paris(2026, 11, 28, 10, 30), False),  # Saturday
    ],
)
def test_a_slot_must_lie_within_one_range_of_its_date(
    start: datetime, end: datetime, open_: bool
) -> None:
    assert is_open_throughout(WEEKDAYS, start, end) is open_


def test_the_bounds_are_wall_clock_time_whatever_the_offset_of_the_request() -> None:
    # 08:00 Paris in winter is 07:00 UTC.
    start = datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert is_open_throughout(WEEKDAYS, start, start.replace(hour=8))
    assert not is_open_throughout(WEEKDAYS, start.replace(hour=6), start)


def test_an_exception_replaces_the_weeks_ranges_for_its_date() -> None:
    site = hours(
        [(EVERY_DAY, "08:00", "18:00")],
        [("2026-12-25", []), ("2026-12-24", [("09:00", "12:00")])],
    )
    assert not is_open_throughout(site, paris(2026, 12, 25, 10), paris(2026, 12, 25, 10, 30))
    assert is_open_throughout(site, paris(2026, 12, 24, 11), paris(2026, 12, 24, 11, 30))
    assert not is_open_throughout(site, paris(2026, 12, 24, 14), paris(2026, 12, 24, 14, 30))
    assert is_open_throughout(site, paris(2026, 12, 26, 14), paris(2026, 12, 26, 14, 30))


def test_an_exception_may_open_a_day_the_week_closes() -> None:
    site = hours([(["mon"], "08:00", "12:00")], [("2026-11-29", [("10:00", "11:00")])])
    assert is_open_throughout(site, paris(2026, 11, 29, 10), paris(2026, 11, 29, 11))


def test_a_range_ending_at_24_00_closes_at_midnight() -> None:
    site = hours([(["sat"], "20:00", "24:00")])
    assert is_open_throughout(site, paris(2026, 11, 28, 23, 30), paris(2026, 11, 29, 0))
    assert not is_open_throughout(site, paris(2026, 11, 28, 23, 45), paris(2026, 11, 29, 0, 15))


def test_a_range_ending_at_24_00_continues_into_the_next_days_opening_at_00_00() -> None:
    site = hours([(["sat"], "20:00", "24:00"), (["sun"], "00:00", "02:00")])
    assert is_open_throughout(site, paris(2026, 11, 28, 23, 45), paris(2026, 11, 29, 0, 15))


def test_touching_ranges_of_a_day_count_as_one() -> None:
    site = hours([(["mon"], "08:00", "12:00"), (["mon"], "12:00", "16:00")])
    assert is_open_throughout(site, paris(2026, 11, 23, 11, 45), paris(2026, 11, 23, 12, 15))


def test_spring_forward_day_ranges_are_wall_clock() -> None:
    # Sunday 2027-03-28: 02:00 CET jumps to 03:00 CEST. 01:00-04:00 lasts two real hours.
    site = hours([(["sun"], "01:00", "04:00"), (["sat"], "20:00", "24:00")])
    assert is_open_throughout(site, paris(2027, 3, 28, 1, 30), paris(2027, 3, 28, 3, 30))
    assert is_open_throughout(site, paris(2027, 3, 28, 3, 30), paris(2027, 3, 28, 4))
    # 03:30-04:30 CEST runs past the 04:00 CEST closing (a fixed +01:00 would accept it).
    assert not is_open_throughout(site, paris(2027, 3, 28, 3, 30), paris(2027, 3, 28, 4, 30))
    # 24:00 on the Saturday before is Sunday 00:00 CET.
    assert is_open_throughout(site, paris(2027, 3, 27, 23, 30), paris(2027, 3, 28, 0))


def test_a_bound_in_the_spring_forward_gap_opens_when_the_clock_exists_again() -> None:
    site = hours([(["sun"], "02:30", "06:00")])
    assert is_open_throughout(site, paris(2027, 3, 28, 3), paris(2027, 3, 28, 3, 30))
    assert not is_open_throughout(site, paris(2027, 3, 28, 1, 30), paris(2027, 3, 28, 3, 0))


def test_fall_back_day_closing_in_the_repeated_hour_covers_both_occurrences() -> None:
    # Sunday 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    site = hours([(["sun"], "00:00", "02:30")])
    second_two_oclock = paris(2026, 10, 25, 2, 0, fold=1)  # 01:00 UTC
    assert second_two_oclock.astimezone(UTC).hour == 1
    assert is_open_throughout(site, second_two_oclock, paris(2026, 10, 25, 2, 30, fold=1))
    assert not is_open_throughout(site, paris(2026, 10, 25, 2, 30, fold=1), paris(2026, 10, 25, 3))


@pytest.mark.parametrize(
    "document",
    [
        None,
        {},
        opening_hours_document(timezone="", weekly=[], exceptions=[], note="sur rendez-vous"),
    ],
)
def test_no_structured_hours_are_unknown_and_never_refuse(document: Any) -> None:
    parsed = parse_opening_hours(document)
    assert parsed is None
    assert is_open_throughout(parsed, paris(2026, 11, 28, 3), paris(2026, 11, 28, 3, 30))


def test_only_exceptions_leave_other_days_unknown() -> None:
    site = hours(exceptions=[("2026-12-25", [])])
    assert not is_open_throughout(site, paris(2026, 12, 25, 10), paris(2026, 12, 25, 10, 30))
    assert is_open_throughout(site, paris(2026, 12, 26, 3), paris(2026, 12, 26, 3, 30))


@pytest.mark.parametrize(
    ("weekly", "exceptions"),
    [
        ([(["mon"], "8h", "12:00")], []),
        ([(["mon"], "12:00", "08:00")], []),
        ([(["mon"], "08:00", "24:30")], []),
        ([(["lundi"], "08:00", "12:00")], []),
        ([([], "08:00", "12:00")], []),
        ([], [("25/12/2026", [])]),
    ],
)
def test_malformed_hours_are_reported(
    weekly: list[tuple[list[str], str, str]], exceptions: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    document = opening_hours_document(
        timezone="Europe/Paris", weekly=weekly, exceptions=exceptions, note=""
    )
    with pytest.raises(UninterpretableHoursError):
        parse_opening_hours(document)


def test_refusal_names_start_and_the_site() -> None:
    with pytest.raises(DomainError) as refused:
        check_site_open(WEEKDAYS, paris(2026, 11, 28, 10), paris(2026, 11, 28, 10, 30), "MSP")
    assert refused.value.field == "start"
    assert refused.value.reason == "the site MSP is closed at that time"
    check_site_open(WEEKDAYS, paris(2026, 11, 23, 10), paris(2026, 11, 23, 10, 30), "MSP")
