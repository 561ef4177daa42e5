"""Measurement types (LOINC code + UCUM unit) and the rules an incoming measurement must pass.

Pure: the caller passes the clock and the retention; nothing here reads a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

BLOOD_PRESSURE_PANEL = "85354-9"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"


@dataclass(frozen=True, slots=True)
class Range:
    """Closed interval [low, high]."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class QuantityType:
    """One LOINC observation in one UCUM unit: what is possible, what is normal."""

    loinc_code: str
    ucum_unit: str
    display: str
    # Outside `possible`: a device or transcription error, rejected.
    possible: Range
    # Outside `normal` (but possible): stored and flagged abnormal.
    normal: Range


@dataclass(frozen=True, slots=True)
class PanelType:
    """A multi-component observation (blood pressure): each component is a QuantityType."""

    loinc_code: str
    display: str
    components: tuple[QuantityType, ...]


_Q = QuantityType
QUANTITY_TYPES: tuple[QuantityType, ...] = (
    _Q("59408-5", "%", "Oxygen saturation by pulse oximetry", Range(50, 100), Range(95, 100)),
    _Q("2708-6", "%", "Oxygen saturation in arterial blood", Range(50, 100), Range(95, 100)),
    _Q("8867-4", "/min", "Heart rate", Range(20, 300), Range(50, 100)),
    _Q("8310-5", "Cel", "Body temperature", Range(25, 45), Range(36, 38)),
    _Q("29463-7", "kg", "Body weight", Range(0.3, 500), Range(0.3, 500)),
    _Q("2339-0", "mg/dL", "Glucose [Mass/volume] in Blood", Range(10, 1500), Range(70, 140)),
    _Q("15074-8", "mmol/L", "Glucose [Moles/volume] in Blood", Range(0.5, 85), Range(3.9, 7.8)),
    _Q("9279-1", "/min", "Respiratory rate", Range(2, 80), Range(12, 20)),
    _Q(SYSTOLIC, "mm[Hg]", "Systolic blood pressure", Range(40, 300), Range(90, 140)),
    _Q(DIASTOLIC, "mm[Hg]", "Diastolic blood pressure", Range(20, 200), Range(60, 90)),
)
PANEL_TYPES: tuple[PanelType, ...] = (
    PanelType(
        BLOOD_PRESSURE_PANEL,
        "Blood pressure panel with all children optional",
        tuple(t for t in QUANTITY_TYPES if t.loinc_code in {SYSTOLIC, DIASTOLIC}),
    ),
)
_QUANTITIES: Mapping[tuple[str, str], QuantityType] = {
    (t.loinc_code, t.ucum_unit): t for t in QUANTITY_TYPES
}
_PANELS: Mapping[str, PanelType] = {p.loinc_code: p for p in PANEL_TYPES}
_KNOWN_CODES = frozenset(t.loinc_code for t in QUANTITY_TYPES) | frozenset(_PANELS)


def is_known(loinc_code: str) -> bool:
    return loinc_code in _KNOWN_CODES


def display_name(loinc_code: str) -> str:
    """The LOINC display name of a known code ("" when unknown)."""
    if loinc_code in _PANELS:
        return _PANELS[loinc_code].display
    return next((t.display for t in QUANTITY_TYPES if t.loinc_code == loinc_code), "")


@dataclass(frozen=True, slots=True)
class Component:
    loinc_code: str
    ucum_unit: str
    value: float


@dataclass(frozen=True, slots=True)
class Reading:
    """What a device reported: a single value, or components for a panel."""

    loinc_code: str
    ucum_unit: str
    measured_at: datetime
    value: float | None = None
    components: Sequence[Component] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Acceptable:
    abnormal: bool


@dataclass(frozen=True, slots=True)
class Rejection:
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Measurements are accepted from `now - retention` to `now + future_tolerance`."""

    now: datetime
    retention: timedelta
    future_tolerance: timedelta = timedelta(minutes=5)
    # Computed once per upload rather than once per item; the bounds also as exact
    # microseconds since the epoch (an int comparison per item, not an aware datetime one).
    earliest: datetime = field(init=False)
    latest: datetime = field(init=False)
    earliest_us: int = field(init=False)
    latest_us: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "earliest", self.now - self.retention)
        object.__setattr__(self, "latest", self.now + self.future_tolerance)
        object.__setattr__(self, "earliest_us", microseconds_since_epoch(self.earliest))
        object.__setattr__(self, "latest_us", microseconds_since_epoch(self.latest))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds_since_epoch(at: datetime) -> int:
    """Exact microseconds since the epoch of an aware instant."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_NORMAL = Acceptable(abnormal=False)
_ABNORMAL = Acceptable(abnormal=True)


def assess(reading: Reading, window: TimeWindow) -> Acceptable | Rejection:
    """Accept (flagging abnormal values) or reject a reading, saying which field and why."""
    if reading.measured_at.tzinfo is None:
        return Rejection("measured_at", "must carry a time zone")
    return assess_values(
        reading.loinc_code,
        reading.ucum_unit,
        microseconds_since_epoch(reading.measured_at),
        reading.value,
        reading.components,
        window,
    )


def assess_values(
    loinc_code: str,
    ucum_unit: str,
    measured_at_us: int,
    value: float | None,
    components: Sequence[Component],
    window: TimeWindow,
) -> Acceptable | Rejection:
    """`assess` on the fields of a reading with a time zone, its instant in microseconds
    since the epoch (the ingest hot path builds no Reading per item)."""
    if measured_at_us > window.latest_us:
        return Rejection("measured_at", "is too far in the future")
    if measured_at_us < window.earliest_us:
        return Rejection("measured_at", "is older than the retention period")
    if loinc_code in _PANELS:
        return _assess_panel(_PANELS[loinc_code], value, components)
    if loinc_code not in _KNOWN_CODES:
        return Rejection("loinc_code", f"unknown measurement type {loinc_code!r}")
    if components:
        return Rejection("components", "only panel observations carry components")
    if value is None:
        return Rejection("value", "is required")
    return _assess_quantity(loinc_code, ucum_unit, value, "")


def _assess_quantity(code: str, unit: str, value: float, prefix: str) -> Acceptable | Rejection:
    kind = _QUANTITIES.get((code, unit))
    if kind is None:
        return Rejection(f"{prefix}ucum_unit", f"unit {unit!r} is not accepted for {code}")
    possible = kind.possible
    if not possible.low <= value <= possible.high:  # NaN fails every comparison
        return Rejection(
            f"{prefix}value",
            f"{value} {unit} is physiologically impossible for {code} "
            f"(possible {kind.possible.low}-{kind.possible.high})",
        )
    normal = kind.normal
    return _NORMAL if normal.low <= value <= normal.high else _ABNORMAL


def _assess_panel(
    panel: PanelType, value: float | None, components: Sequence[Component]
) -> Acceptable | Rejection:
    if value is not None:
        return Rejection("value", f"{panel.loinc_code} carries its values in components")
    expected = {c.loinc_code for c in panel.components}
    given = [c.loinc_code for c in components]
    if sorted(given) != sorted(expected):
        return Rejection("components", f"{panel.loinc_code} needs exactly {sorted(expected)}")
    abnormal = False
    for index, component in enumerate(components):
        outcome = _assess_quantity(
            component.loinc_code, component.ucum_unit, component.value, f"components.{index}."
        )
        if isinstance(outcome, Rejection):
            return outcome
        abnormal = abnormal or outcome.abnormal
    values = {c.loinc_code: c.value for c in components}
    if panel.loinc_code == BLOOD_PRESSURE_PANEL and values[SYSTOLIC] <= values[DIASTOLIC]:
        return Rejection("components", "systolic must be above diastolic")
    return Acceptable(abnormal=abnormal)


def values_by_code(reading: Reading) -> dict[str, float]:
    """Each observed LOINC code and its value (panels contribute their components)."""
    if reading.components:
        return {c.loinc_code: c.value for c in reading.components}
    if reading.value is None:
        return {}
    return {reading.loinc_code: reading.value}
