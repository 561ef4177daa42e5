"""Pure rules of a site's opening hours: validation, OSM text, FHIR availableTime."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from maillage_directory.db.repositories import StoredAggregate
from maillage_directory.domain.errors import InvalidValueError
from maillage_directory.domain.fhir import location
from maillage_directory.domain.model import SiteFields, site_errors
from maillage_directory.domain.opening_hours import (
    OpeningHours,
    available_time,
    is_open,
    not_available,
    opening_hours_errors,
    parse_osm,
    to_osm,
)
from maillage_directory.domain.specialties import specialty_list
from maillage_directory.use_cases.snapshots import site_changed

from directory_testing import site

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def hours(**raw: Any) -> OpeningHours:
    return OpeningHours.model_validate(raw)


def fields_in_error(value: OpeningHours) -> set[str]:
    return {error.field for error in opening_hours_errors(value)[1]}


def test_several_ranges_a_day_are_accepted_and_ordered() -> None:
    value = hours(
        weekly=[
            {"days": ["sat"], "opens": "09:00", "closes": "12:00"},
            {"days": ["fri", "mon"], "opens": "14:00", "closes": "18:00"},
            {"days": WEEKDAYS, "opens": "08:00", "closes": "12:00"},
        ]
    )
    normalised, errors = opening_hours_errors(value)
    assert errors == []
    assert [(e.days[0], e.opens) for e in normalised.weekly] == [
        ("mon", "08:00"),
        ("mon", "14:00"),
        ("sat", "09:00"),
    ]
    assert normalised.weekly[1].days == ["mon", "fri"]


def test_closing_before_opening_is_refused_naming_the_field() -> None:
    value = hours(weekly=[{"days": ["mon"], "opens": "12:00", "closes": "08:00"}])
    assert fields_in_error(value) == {"opening_hours.weekly.0.closes"}
    empty = hours(weekly=[{"days": ["mon"], "opens": "08:00", "closes": "08:00"}])
    assert fields_in_error(empty) == {"opening_hours.weekly.0.closes"}


def test_overlapping_ranges_on_a_shared_day_are_refused_touching_ones_are_fine() -> None:
    overlapping = hours(
        weekly=[
            {"days": WEEKDAYS, "opens": "08:00", "closes": "12:30"},
            {"days": ["wed"], "opens": "12:00", "closes": "18:00"},
        ]
    )
    errors = opening_hours_errors(overlapping)[1]
    assert [(e.field, e.reason) for e in errors] == [
        ("opening_hours.weekly.1", "overlaps opening_hours.weekly.0 on wed")
    ]
    touching = hours(
        weekly=[
            {"days": ["wed"], "opens": "08:00", "closes": "12:00"},
            {"days": ["wed"], "opens": "12:00", "closes": "24:00"},
        ]
    )
    assert fields_in_error(touching) == set()


def test_exceptions_one_per_date_without_overlaps() -> None:
    value = hours(
        exceptions=[
            {"date": "2026-12-25"},
            {"date": "2026-12-25", "reason": "twice"},
            {
                "date": "2026-12-24",
                "ranges": [
                    {"opens": "08:00", "closes": "12:00"},
                    {"opens": "11:00", "closes": "13:00"},
                ],
            },
        ]
    )
    assert fields_in_error(value) == {
        "opening_hours.exceptions.1.date",
        "opening_hours.exceptions.2.ranges.1",
    }


def test_site_validation_reports_opening_hour_errors_with_the_others() -> None:
    body = site(opening_hours={"weekly": [{"days": ["mon"], "opens": "18:00", "closes": "08:00"}]})
    _, errors = site_errors(SiteFields.model_validate(body))
    assert [e.field for e in errors] == ["opening_hours.weekly.0.closes"]


def test_is_open_reads_the_paris_wall_clock_and_exceptions_win() -> None:
    value = hours(
        weekly=[{"days": WEEKDAYS, "opens": "08:00", "closes": "12:00"}],
        exceptions=[{"date": "2026-07-14"}],
    )
    # 06:30 UTC is 08:30 in Paris in summer (UTC+2), 07:30 in winter (UTC+1).
    assert is_open(value, datetime(2026, 7, 15, 6, 30, tzinfo=UTC))
    assert not is_open(value, datetime(2026, 1, 14, 6, 30, tzinfo=UTC))
    assert not is_open(value, datetime(2026, 7, 14, 8, 0, tzinfo=UTC))  # national holiday
    assert not is_open(value, datetime(2026, 7, 18, 8, 0, tzinfo=UTC))  # a Saturday


def test_fhir_available_time_and_not_available_periods_with_the_paris_offset() -> None:
    value = hours(
        weekly=[
            {"days": WEEKDAYS, "opens": "08:00", "closes": "12:00"},
            {"days": ["sun"], "opens": "00:00", "closes": "24:00"},
        ],
        exceptions=[
            {"date": "2026-12-24", "ranges": [{"opens": "08:00", "closes": "12:00"}]},
            {"date": "2026-07-14", "reason": "fête nationale"},
        ],
    )
    value = opening_hours_errors(value)[0]
    assert available_time(value) == [
        {
            "daysOfWeek": WEEKDAYS,
            "availableStartTime": "08:00:00",
            "availableEndTime": "12:00:00",
        },
        {"daysOfWeek": ["sun"], "allDay": True},
    ]
    assert not_available(value) == [
        {
            "description": "fête nationale",
            "during": {"start": "2026-07-14T00:00:00+02:00", "end": "2026-07-15T00:00:00+02:00"},
        },
        {
            "description": "horaires exceptionnels",
            "during": {"start": "2026-12-24T00:00:00+01:00", "end": "2026-12-24T08:00:00+01:00"},
        },
        {
            "description": "horaires exceptionnels",
            "during": {"start": "2026-12-24T12:00:00+01:00", "end": "2026-12-25T00:00:00+01:00"},
        },
    ]


def test_the_fhir_location_view_carries_the_hours() -> None:
    data = SiteFields.model_validate(
        site(
            opening_hours={
                "weekly": [{"days": ["mon"], "opens": "09:00", "closes": "17:00"}],
                "exceptions": [{"date": date(2026, 5, 1).isoformat()}],
                "note": "sur rendez-vous",
            }
        )
    ).model_dump(mode="json")
    data["departement"] = "57"
    stored = {"id": "s1", "version": 1, "active": True, "updated_at": "2026-11-22", "data": data}
    resource = location(stored)
    assert resource["availableTime"][0]["daysOfWeek"] == ["mon"]
    assert resource["notAvailable"][0]["during"]["start"] == "2026-05-01T00:00:00+02:00"
    assert resource["availabilityExceptions"] == "sur rendez-vous"


def test_osm_text_of_the_common_subset_becomes_weekly_ranges() -> None:
    value = parse_osm("Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00; We off")
    assert opening_hours_errors(value)[1] == []
    assert to_osm(value) == (
        "Mo 08:00-12:00,14:00-18:00; Tu 08:00-12:00,14:00-18:00; "
        "Th 08:00-12:00,14:00-18:00; Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00"
    )
    assert parse_osm("24/7").weekly[0].closes == "24:00"
    assert [d.value for d in parse_osm("Sa-Mo 10:00-11:00").weekly[0].days] == [
        "sat",
        "sun",
        "mon",
    ]


@pytest.mark.parametrize(
    "text", ["sur rendez-vous", "Mo-Fr 8h-12h", "Xx 08:00-12:00", "Mo 25:00-26:00"]
)
def test_osm_text_outside_the_subset_is_refused(text: str) -> None:
    with pytest.raises(InvalidValueError):
        parse_osm(text)


def test_the_specialty_list_uses_the_tre_r38_codes() -> None:
    # Checked against TRE_R38_SpecialiteOrdinale 20260730120000 (ANS).
    codes = specialty_list()
    assert codes.resolve("geriatrie") == "SM18"
    assert codes.resolve("medecine-generale") == "SM54"
    assert codes.resolve("orl") == "SM39"
    assert codes.resolve("endocrinologie-diabetologie-nutrition") == "SM62"
    assert codes.nomenclature_version == "20260730120000"
    with pytest.raises(InvalidValueError):
        codes.resolve("SM53")


def test_the_site_event_carries_the_hours() -> None:
    fields = SiteFields.model_validate(
        site(
            opening_hours={
                "weekly": [{"days": ["mon", "tue"], "opens": "09:00", "closes": "17:00"}],
                "exceptions": [{"date": "2026-05-01", "reason": "fête du travail"}],
            }
        )
    )
    data = {**fields.model_dump(mode="json"), "departement": "57"}
    moment = datetime(2026, 11, 22, tzinfo=UTC)
    stored = StoredAggregate(uuid.uuid4(), 1, True, data, moment, moment)
    hours = site_changed(stored, "created", moment).site.opening_hours
    assert hours.timezone == "Europe/Paris"
    assert list(hours.weekly[0].days) == ["mon", "tue"]
    assert hours.weekly[0].closes == "17:00"
    assert hours.exceptions[0].date == "2026-05-01"
    assert list(hours.exceptions[0].ranges) == []
