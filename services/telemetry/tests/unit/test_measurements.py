"""Measurement rules: known type/unit pairs, physiological ranges, the time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maillage_telemetry.domain.measurements import (
    Acceptable,
    Component,
    Reading,
    Rejection,
    TimeWindow,
    assess,
    is_known,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WINDOW = TimeWindow(NOW, retention=timedelta(days=365))


def reading(code: str, unit: str, value: float | None, **changes: object) -> Reading:
    fields: dict[str, object] = {
        "loinc_code": code,
        "ucum_unit": unit,
        "value": value,
        "measured_at": NOW - timedelta(minutes=1),
    }
    fields.update(changes)
    return Reading(**fields)  # type: ignore[arg-type]


def bp(systolic: float, diastolic: float, unit: str = "mm[Hg]") -> Reading:
    return reading(
        "85354-9",
        "mm[Hg]",
        None,
        components=(Component("8480-6", unit, systolic), Component("8462-4", unit, diastolic)),
    )


@pytest.mark.parametrize(
    ("code", "unit", "value"),
    [
        ("59408-5", "%", 97),
        ("2708-6", "%", 98),
        ("8867-4", "/min", 72),
        ("8310-5", "Cel", 37.0),
        ("29463-7", "kg", 70.5),
        ("2339-0", "mg/dL", 95),
        ("15074-8", "mmol/L", 5.4),
        ("9279-1", "/min", 16),
    ],
)
def test_a_normal_value_of_each_type_is_accepted_unflagged(
    code: str, unit: str, value: float
) -> None:
    assert assess(reading(code, unit, value), WINDOW) == Acceptable(abnormal=False)


@pytest.mark.parametrize(
    ("code", "unit", "value"),
    [
        ("59408-5", "%", 88),
        ("8867-4", "/min", 140),
        ("8310-5", "Cel", 39.8),
        ("2339-0", "mg/dL", 50),
    ],
)
def test_an_abnormal_but_possible_value_is_accepted_and_flagged(
    code: str, unit: str, value: float
) -> None:
    assert assess(reading(code, unit, value), WINDOW) == Acceptable(abnormal=True)


@pytest.mark.parametrize(
    ("code", "unit", "value"),
    [
        ("59408-5", "%", 101),
        ("59408-5", "%", 12),
        ("8867-4", "/min", 0),
        ("8310-5", "Cel", 50),
        ("29463-7", "kg", -2),
        ("9279-1", "/min", 200),
        ("8310-5", "Cel", float("nan")),
    ],
)
def test_an_impossible_value_is_rejected_on_value(code: str, unit: str, value: float) -> None:
    outcome = assess(reading(code, unit, value), WINDOW)
    assert isinstance(outcome, Rejection)
    assert outcome.field == "value"
    assert "impossible" in outcome.reason


def test_a_known_code_in_the_wrong_unit_is_rejected() -> None:
    assert assess(reading("8310-5", "[degF]", 98.6), WINDOW) == Rejection(
        "ucum_unit", "unit '[degF]' is not accepted for 8310-5"
    )


def test_an_unknown_code_is_rejected() -> None:
    outcome = assess(reading("1234-5", "%", 1), WINDOW)
    assert isinstance(outcome, Rejection)
    assert outcome.field == "loinc_code"
    assert not is_known("1234-5")


def test_a_missing_value_is_rejected() -> None:
    assert assess(reading("8867-4", "/min", None), WINDOW) == Rejection("value", "is required")


def test_up_to_five_minutes_in_the_future_is_accepted_beyond_is_rejected() -> None:
    edge = reading("8867-4", "/min", 70, measured_at=NOW + timedelta(minutes=5))
    beyond = reading("8867-4", "/min", 70, measured_at=NOW + timedelta(minutes=5, seconds=1))
    assert isinstance(assess(edge, WINDOW), Acceptable)
    assert assess(beyond, WINDOW) == Rejection("measured_at", "is too far in the future")


def test_older_than_retention_is_rejected() -> None:
    old = reading("8867-4", "/min", 70, measured_at=NOW - timedelta(days=366))
    assert assess(old, WINDOW) == Rejection("measured_at", "is older than the retention period")


def test_a_naive_timestamp_is_rejected() -> None:
    naive = reading("8867-4", "/min", 70, measured_at=datetime(2026, 11, 22, 9, 0))
    assert assess(naive, WINDOW) == Rejection("measured_at", "must carry a time zone")


def test_blood_pressure_panel_is_assessed_component_by_component() -> None:
    assert assess(bp(120, 80), WINDOW) == Acceptable(abnormal=False)
    assert assess(bp(185, 95), WINDOW) == Acceptable(abnormal=True)
    impossible = assess(bp(400, 80), WINDOW)
    assert isinstance(impossible, Rejection)
    assert impossible.field == "components.0.value"


def test_blood_pressure_needs_both_components_in_mmhg_and_systolic_above_diastolic() -> None:
    only_systolic = reading(
        "85354-9", "mm[Hg]", None, components=(Component("8480-6", "mm[Hg]", 120),)
    )
    assert isinstance(assess(only_systolic, WINDOW), Rejection)
    assert assess(bp(120, 80, unit="kPa"), WINDOW) == Rejection(
        "components.0.ucum_unit", "unit 'kPa' is not accepted for 8480-6"
    )
    assert assess(bp(80, 120), WINDOW) == Rejection(
        "components", "systolic must be above diastolic"
    )


def test_a_panel_with_a_single_value_or_a_quantity_with_components_is_rejected() -> None:
    assert assess(reading("85354-9", "mm[Hg]", 120), WINDOW) == Rejection(
        "value", "85354-9 carries its values in components"
    )
    with_components = reading("8867-4", "/min", 70, components=(Component("8867-4", "/min", 70),))
    assert assess(with_components, WINDOW) == Rejection(
        "components", "only panel observations carry components"
    )
