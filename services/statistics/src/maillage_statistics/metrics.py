"""Prometheus indicator metrics: a custom collector over the projections.

`collect()` runs in the scrape and must not block, so it serves the latest snapshot and
wakes the refresher, which re-reads the projections at most every `metrics_cache_seconds`
and only while someone scrapes (no load when nobody watches).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import structlog
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maillage_common.runtime import Runtime
from maillage_common.service import BackgroundWork
from maillage_statistics.use_cases.indicators import IndicatorParameters
from maillage_statistics.use_cases.metrics import HeadlineSnapshot, headline_snapshot

_log = structlog.get_logger(__name__)


class IndicatorCollector(Collector):
    """Exposes the latest headline snapshot; asks for a fresh one on each scrape."""

    def __init__(self) -> None:
        self.snapshot = HeadlineSnapshot()
        self.refreshed_at = 0.0
        self.wanted: asyncio.Event | None = None

    def collect(self) -> Iterator[Metric]:
        if self.wanted is not None:
            self.wanted.set()
        yield from _families(self.snapshot)


def _families(snapshot: HeadlineSnapshot) -> Iterator[Metric]:
    acts = CounterMetricFamily(
        "maillage_statistics_acts",
        "Telehealth acts performed (teleconsultations ended, tele-expertises answered, "
        "telemonitoring measurements), from the projections",
        labels=["departement", "site_category", "specialty", "act"],
    )
    for labels, value in sorted(snapshot.acts.items()):
        acts.add_metric(list(labels), value)
    yield acts
    sites = GaugeMetricFamily(
        "maillage_statistics_operational_sites",
        "Operational (active) sites",
        labels=["departement", "site_category"],
    )
    for site_labels, value in sorted(snapshot.sites.items()):
        sites.add_metric(list(site_labels), value)
    yield sites
    usage = GaugeMetricFamily(
        "maillage_statistics_sites_by_usage",
        "Operational sites by usage status (regular, transition, none)",
        labels=["departement", "status"],
    )
    for usage_labels, value in sorted(snapshot.usage.items()):
        usage.add_metric(list(usage_labels), value)
    yield usage
    online = GaugeMetricFamily(
        "maillage_statistics_kiosks_online", "Kiosks heard from recently", labels=["departement"]
    )
    for departement, value in sorted(snapshot.kiosks_online.items()):
        online.add_metric([departement], value)
    yield online
    alerts = GaugeMetricFamily(
        "maillage_statistics_alerts_open", "Telemetry alerts not cleared", labels=["departement"]
    )
    for departement, value in sorted(snapshot.alerts_open.items()):
        alerts.add_metric([departement], value)
    yield alerts


COLLECTOR = IndicatorCollector()
REGISTRY.register(COLLECTOR)


def indicator_metrics(parameters: IndicatorParameters, cache_seconds: float) -> BackgroundWork:
    """Background work (for `create_service_app`) keeping COLLECTOR's snapshot fresh."""

    @contextlib.asynccontextmanager
    async def run(runtime: Runtime) -> AsyncIterator[None]:
        COLLECTOR.wanted = asyncio.Event()
        COLLECTOR.wanted.set()  # a first snapshot at start, so the first scrape has data
        task = asyncio.create_task(_refresh_loop(runtime, parameters, cache_seconds))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            COLLECTOR.wanted = None

    return run


async def refresh(runtime: Runtime, parameters: IndicatorParameters) -> None:
    COLLECTOR.snapshot = await headline_snapshot(runtime.unit_of_work(), parameters)
    COLLECTOR.refreshed_at = time.monotonic()


async def _refresh_loop(runtime: Runtime, parameters: IndicatorParameters, every: float) -> None:
    wanted = COLLECTOR.wanted
    assert wanted is not None
    while True:
        await wanted.wait()
        wanted.clear()
        try:
            await refresh(runtime, parameters)
        except Exception as error:  # the database may be away: keep the last snapshot
            _log.warning("indicator_metrics_refresh_failed", error=repr(error))
        await asyncio.sleep(every)
