"""Long-running work of the service: the offline watchdog and the fleet gauges."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import structlog

from maillage_common.runtime import Runtime
from maillage_common.service import BackgroundWork
from maillage_telemetry.metrics import ALERTS_OPEN, KIOSKS, PERIPHERALS_IN_FAULT
from maillage_telemetry.settings import TelemetrySettings
from maillage_telemetry.use_cases.alerting import open_alert_counts
from maillage_telemetry.use_cases.health import detect_offline_kiosks, prune_expired
from maillage_telemetry.use_cases.queries import fleet_overview

_log = structlog.get_logger(__name__)


async def watch_fleet(runtime: Runtime, settings: TelemetrySettings) -> None:
    """Every interval: raise offline alerts for silent kiosks, refresh the fleet gauges,
    prune what is older than the retention period.

    A failure (database away) is logged and retried next round: the watchdog never dies.
    """
    started_at = datetime.now(UTC)
    while True:
        try:
            now = datetime.now(UTC)
            if may_judge_silence(started_at, now, settings.offline_after):
                raised = await detect_offline_kiosks(runtime.sessions, now, settings.offline_after)
                if raised:
                    _log.info("kiosks_went_offline", count=raised)
            await _refresh_gauges(runtime, settings, now)
            await prune_expired(runtime.sessions, now, settings.retention)
        except Exception as error:
            _log.warning("fleet_watch_failed", error=repr(error))
        await asyncio.sleep(settings.offline_check_interval_seconds)


def may_judge_silence(started_at: datetime, now: datetime, offline_after: timedelta) -> bool:
    """Whether silence can be blamed on the kiosks yet.

    While this service was down (a crash, a deployment), kiosks' heartbeats were refused, so
    right after a start every kiosk looks silent: judging then would raise an offline alert
    for the whole fleet. Kiosks get one full `offline_after` to be heard again first.
    """
    return now - started_at >= offline_after


async def _refresh_gauges(runtime: Runtime, settings: TelemetrySettings, now: datetime) -> None:
    groups = await fleet_overview(runtime.unit_of_work(), now, settings.offline_after)
    KIOSKS.clear()
    PERIPHERALS_IN_FAULT.clear()
    faults: dict[str, int] = {}
    for group in groups:
        for status in ("online", "degraded", "offline"):
            KIOSKS.labels(group.departement, group.site_category, status).set(
                getattr(group, status)
            )
        faults[group.departement] = faults.get(group.departement, 0) + group.peripherals_in_fault
    for departement, count in faults.items():
        PERIPHERALS_IN_FAULT.labels(departement).set(count)
    open_alerts = await open_alert_counts(runtime.unit_of_work())
    ALERTS_OPEN.clear()
    for kind, departement, count in open_alerts:
        ALERTS_OPEN.labels(kind, departement).set(count)


def fleet_watchdog(settings: TelemetrySettings) -> BackgroundWork:
    """The background work `create_service_app` runs beside the chassis."""

    @contextlib.asynccontextmanager
    async def run(runtime: Runtime) -> AsyncIterator[None]:
        task = asyncio.create_task(watch_fleet(runtime, settings), name="fleet-watchdog")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run
