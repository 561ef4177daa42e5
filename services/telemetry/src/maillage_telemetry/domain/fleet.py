"""Kiosk health: what a kiosk's last heartbeat says about it now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class FleetStatus(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class ReportedStatus(StrEnum):
    """What the kiosk says about itself (KioskStatus in the contract)."""

    READY = "ready"
    IN_SESSION = "in_session"
    DEGRADED = "degraded"
    MAINTENANCE = "maintenance"


class PeripheralState(StrEnum):
    OK = "ok"
    FAULT = "fault"
    ABSENT = "absent"


class NetworkQuality(StrEnum):
    EXCELLENT = "excellent"
    GOOD = "good"
    POOR = "poor"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The latest heartbeat of a kiosk, as far as status is concerned."""

    last_heartbeat_at: datetime | None
    reported: ReportedStatus
    peripherals: Iterable[PeripheralState]
    network: NetworkQuality | None


def is_silent(last_heartbeat_at: datetime | None, now: datetime, offline_after: timedelta) -> bool:
    """No heartbeat for longer than `offline_after` (never seen counts as silent)."""
    return last_heartbeat_at is None or now - last_heartbeat_at > offline_after


def fleet_status(report: HealthReport, now: datetime, offline_after: timedelta) -> FleetStatus:
    """Offline when silent; degraded when it says so, a peripheral is faulty or the
    network is poor or in maintenance; online otherwise."""
    if is_silent(report.last_heartbeat_at, now, offline_after):
        return FleetStatus.OFFLINE
    degraded = (
        report.reported in {ReportedStatus.DEGRADED, ReportedStatus.MAINTENANCE}
        or any(p is not PeripheralState.OK for p in report.peripherals)
        or report.network in {NetworkQuality.POOR, NetworkQuality.LOST}
    )
    return FleetStatus.DEGRADED if degraded else FleetStatus.ONLINE


def is_faulty(state: PeripheralState) -> bool:
    return state is not PeripheralState.OK
