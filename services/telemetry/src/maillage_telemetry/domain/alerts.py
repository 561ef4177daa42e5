"""Alert rules: thresholds with hysteresis, and the deduplication keys of open alerts.

An alert opens when its condition starts and stays open (one per key, so a storm of
readings or heartbeats never raises twice) until the condition has clearly ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class AlertKind(StrEnum):
    KIOSK_OFFLINE = "kiosk_offline"
    PERIPHERAL_FAULT = "peripheral_fault"
    MEASUREMENT_THRESHOLD = "measurement_threshold"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Direction(StrEnum):
    BELOW = "below"
    ABOVE = "above"


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """Raise when a value crosses `raise_at`; clear only once it is back past `clear_at`.

    The gap between the two is the hysteresis: a value wobbling around the threshold
    (89, 91, 89, 91 for SpO2 < 90) raises once and does not flap.
    """

    loinc_code: str
    direction: Direction
    raise_at: float
    clear_at: float
    severity: Severity = Severity.CRITICAL

    def __post_init__(self) -> None:
        wrong_side = (
            self.clear_at < self.raise_at
            if self.direction is Direction.BELOW
            else self.clear_at > self.raise_at
        )
        if wrong_side:
            raise ValueError(f"{self.loinc_code}: clear_at must be on the safe side of raise_at")

    def breached(self, value: float) -> bool:
        if self.direction is Direction.BELOW:
            return value < self.raise_at
        return value > self.raise_at

    def recovered(self, value: float) -> bool:
        if self.direction is Direction.BELOW:
            return value >= self.clear_at
        return value <= self.clear_at


class Transition(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"
    KEEP = "keep"


def threshold_transition(rule: ThresholdRule, value: float, *, open_: bool) -> Transition:
    """What a new value does to the alert of `rule`, given whether one is open."""
    if not open_ and rule.breached(value):
        return Transition.RAISE
    if open_ and rule.recovered(value):
        return Transition.CLEAR
    return Transition.KEEP


def rules_for(rules: Iterable[ThresholdRule], loinc_code: str) -> list[ThresholdRule]:
    return [rule for rule in rules if rule.loinc_code == loinc_code]


def rules_by_code(rules: Iterable[ThresholdRule]) -> dict[str, tuple[ThresholdRule, ...]]:
    """The rules indexed by LOINC code (looked up once per measurement)."""
    indexed: dict[str, list[ThresholdRule]] = {}
    for rule in rules:
        indexed.setdefault(rule.loinc_code, []).append(rule)
    return {code: tuple(found) for code, found in indexed.items()}


DEFAULT_THRESHOLDS: Sequence[ThresholdRule] = (
    ThresholdRule("59408-5", Direction.BELOW, 90, 92),
    ThresholdRule("2708-6", Direction.BELOW, 90, 92),
    ThresholdRule("8480-6", Direction.ABOVE, 180, 170),
    ThresholdRule("8480-6", Direction.BELOW, 80, 90, Severity.WARNING),
    ThresholdRule("8867-4", Direction.ABOVE, 130, 120, Severity.WARNING),
    ThresholdRule("8867-4", Direction.BELOW, 40, 45, Severity.WARNING),
    ThresholdRule("8310-5", Direction.ABOVE, 39.5, 38.5, Severity.WARNING),
    ThresholdRule("2339-0", Direction.BELOW, 54, 70),
    ThresholdRule("15074-8", Direction.BELOW, 3.0, 3.9),
    ThresholdRule("9279-1", Direction.ABOVE, 30, 25, Severity.WARNING),
)


def offline_key(kiosk_id: str) -> str:
    return f"offline:{kiosk_id}"


def peripheral_key(kiosk_id: str, device_id: str) -> str:
    return f"peripheral:{kiosk_id}:{device_id}"


def threshold_key(patient_ref: str, rule: ThresholdRule) -> str:
    return f"threshold:{patient_ref}:{rule.loinc_code}:{rule.direction}"
