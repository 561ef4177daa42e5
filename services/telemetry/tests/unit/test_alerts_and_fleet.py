"""Alert hysteresis and kiosk fleet status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maillage_telemetry.background import may_judge_silence
from maillage_telemetry.domain.alerts import (
    DEFAULT_THRESHOLDS,
    Direction,
    ThresholdRule,
    Transition,
    offline_key,
    peripheral_key,
    rules_for,
    threshold_key,
    threshold_transition,
)
from maillage_telemetry.domain.fleet import (
    FleetStatus,
    HealthReport,
    NetworkQuality,
    PeripheralState,
    ReportedStatus,
    fleet_status,
    is_silent,
)

SPO2 = ThresholdRule("59408-5", Direction.BELOW, raise_at=90, clear_at=92)
SYSTOLIC = ThresholdRule("8480-6", Direction.ABOVE, raise_at=180, clear_at=170)


def run(rule: ThresholdRule, values: list[float]) -> list[Transition]:
    """Feed values one by one, tracking whether the alert is open."""
    open_ = False
    seen = []
    for value in values:
        transition = threshold_transition(rule, value, open_=open_)
        if transition is Transition.RAISE:
            open_ = True
        elif transition is Transition.CLEAR:
            open_ = False
        seen.append(transition)
    return seen


def test_a_value_wobbling_around_the_threshold_raises_once() -> None:
    transitions = run(SPO2, [95, 89, 91, 89, 91, 89])
    assert transitions.count(Transition.RAISE) == 1
    assert Transition.CLEAR not in transitions


def test_the_alert_clears_only_past_the_clear_level_and_can_raise_again() -> None:
    assert run(SPO2, [88, 91, 92, 89]) == [
        Transition.RAISE,
        Transition.KEEP,
        Transition.CLEAR,
        Transition.RAISE,
    ]
    assert run(SYSTOLIC, [185, 175, 170, 200]) == [
        Transition.RAISE,
        Transition.KEEP,
        Transition.CLEAR,
        Transition.RAISE,
    ]


def test_the_threshold_itself_does_not_raise() -> None:
    assert run(SPO2, [90]) == [Transition.KEEP]
    assert run(SYSTOLIC, [180]) == [Transition.KEEP]


def test_a_clear_level_on_the_wrong_side_is_refused() -> None:
    with pytest.raises(ValueError, match="safe side"):
        ThresholdRule("59408-5", Direction.BELOW, raise_at=90, clear_at=85)


def test_defaults_cover_the_issue_examples() -> None:
    spo2 = rules_for(DEFAULT_THRESHOLDS, "59408-5")
    assert [(r.direction, r.raise_at) for r in spo2] == [(Direction.BELOW, 90)]
    systolic = {(r.direction, r.raise_at) for r in rules_for(DEFAULT_THRESHOLDS, "8480-6")}
    assert (Direction.ABOVE, 180) in systolic


def test_dedup_keys_name_the_condition_not_the_reading() -> None:
    assert offline_key("k1") == offline_key("k1") != offline_key("k2")
    assert peripheral_key("k1", "d1") != peripheral_key("k1", "d2")
    assert threshold_key("p1", SPO2) != threshold_key("p1", SYSTOLIC)


NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
T = timedelta(minutes=3)


def report(
    seconds_ago: float | None = 10,
    reported: ReportedStatus = ReportedStatus.READY,
    peripherals: tuple[PeripheralState, ...] = (PeripheralState.OK,),
    network: NetworkQuality | None = NetworkQuality.GOOD,
) -> HealthReport:
    last = None if seconds_ago is None else NOW - timedelta(seconds=seconds_ago)
    return HealthReport(last, reported, peripherals, network)


def test_a_recent_healthy_kiosk_is_online() -> None:
    assert fleet_status(report(), NOW, T) is FleetStatus.ONLINE
    assert fleet_status(report(reported=ReportedStatus.IN_SESSION), NOW, T) is FleetStatus.ONLINE


@pytest.mark.parametrize(
    "health",
    [
        report(reported=ReportedStatus.DEGRADED),
        report(reported=ReportedStatus.MAINTENANCE),
        report(peripherals=(PeripheralState.OK, PeripheralState.FAULT)),
        report(peripherals=(PeripheralState.ABSENT,)),
        report(network=NetworkQuality.POOR),
    ],
)
def test_faults_or_poor_network_make_it_degraded(health: HealthReport) -> None:
    assert fleet_status(health, NOW, T) is FleetStatus.DEGRADED


def test_silence_longer_than_t_or_never_seen_is_offline() -> None:
    assert fleet_status(report(seconds_ago=181), NOW, T) is FleetStatus.OFFLINE
    assert fleet_status(report(seconds_ago=None), NOW, T) is FleetStatus.OFFLINE
    assert not is_silent(NOW - T, NOW, T)
    assert is_silent(NOW - T - timedelta(seconds=1), NOW, T)


def test_silence_is_judged_only_once_kiosks_had_a_full_delay_to_be_heard_after_a_start() -> None:
    started = datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    delay = timedelta(minutes=3)

    assert not may_judge_silence(started, started, delay)
    assert not may_judge_silence(started, started + delay - timedelta(seconds=1), delay)
    assert may_judge_silence(started, started + delay, delay)
