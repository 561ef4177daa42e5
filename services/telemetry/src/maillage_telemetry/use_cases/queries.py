"""Read side: fleet overview, one kiosk's health, a patient reference's measurements."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import (
    PERCENTILES,
    QUALITY_METRICS,
    AlertRepository,
    CallQualityRepository,
    KioskHealthRepository,
    MeasurementRepository,
)
from maillage_telemetry.domain.alerts import AlertKind
from maillage_telemetry.domain.fhir import StoredMeasurement
from maillage_telemetry.domain.fleet import (
    FleetStatus,
    HealthReport,
    NetworkQuality,
    PeripheralState,
    ReportedStatus,
    fleet_status,
)
from maillage_telemetry.domain.measurements import Component

_KIOSK_ALERT_KINDS = frozenset({AlertKind.KIOSK_OFFLINE.value, AlertKind.PERIPHERAL_FAULT.value})


def _report(row: Mapping[Any, Any]) -> HealthReport:
    return HealthReport(
        last_heartbeat_at=row["last_heartbeat_at"],
        reported=ReportedStatus(row["reported_status"] or ReportedStatus.READY),
        peripherals=[PeripheralState(p["status"]) for p in row["peripherals"] or []],
        network=NetworkQuality(row["network_quality"]) if row["network_quality"] else None,
    )


@dataclass(frozen=True, slots=True)
class FleetGroup:
    departement: str
    site_category: str
    online: int = 0
    degraded: int = 0
    offline: int = 0
    peripherals_in_fault: int = 0


async def fleet_overview(
    uow: UnitOfWork, now: datetime, offline_after: timedelta
) -> list[FleetGroup]:
    """Kiosks online, degraded and offline per (département, site category)."""
    async with uow:
        rows = await KioskHealthRepository(uow.session).fleet()
    counts: dict[tuple[str, str], Counter[str]] = {}
    for row in rows:
        report = _report(row)
        group = counts.setdefault((row["departement"], row["site_category"]), Counter())
        group[fleet_status(report, now, offline_after).value] += 1
        group["fault"] += sum(1 for p in report.peripherals if p is not PeripheralState.OK)
    return [
        FleetGroup(
            departement,
            category,
            online=c[FleetStatus.ONLINE.value],
            degraded=c[FleetStatus.DEGRADED.value],
            offline=c[FleetStatus.OFFLINE.value],
            peripherals_in_fault=c["fault"],
        )
        for (departement, category), c in sorted(counts.items())
    ]


@dataclass(frozen=True, slots=True)
class KioskHealth:
    kiosk_id: str
    site_id: str
    departement: str
    site_category: str
    status: FleetStatus
    state: Mapping[Any, Any] | None
    heartbeats: Sequence[Mapping[Any, Any]] = field(default_factory=list)
    alerts: Sequence[Mapping[Any, Any]] = field(default_factory=list)


async def kiosk_health(
    uow: UnitOfWork,
    kiosk_id: str,
    *,
    site_scope: str | None,
    now: datetime,
    offline_after: timedelta,
    limit: int,
) -> KioskHealth | None:
    """A kiosk's status, recent heartbeats and alerts; None when unknown or outside
    `site_scope` (another site's kiosk reads as absent)."""
    async with uow:
        health = KioskHealthRepository(uow.session)
        state = await health.state(kiosk_id)
        placed = state or await health.directory_kiosk(kiosk_id)
        if placed is None or (site_scope is not None and placed["site_id"] != site_scope):
            return None
        heartbeats = await health.recent_heartbeats(kiosk_id, limit)
        alerts = await AlertRepository(uow.session).for_kiosk(
            kiosk_id, open_only=False, limit=limit
        )
    status = fleet_status(_report(state), now, offline_after) if state else FleetStatus.OFFLINE
    return KioskHealth(
        kiosk_id=kiosk_id,
        site_id=placed["site_id"],
        departement=placed["departement"],
        site_category=placed["site_category"],
        status=status,
        state=state,
        heartbeats=heartbeats,
        # Threshold alerts name a patient: they are not part of a kiosk's health.
        alerts=[a for a in alerts if a["kind"] in _KIOSK_ALERT_KINDS],
    )


async def measurement_history(
    uow: UnitOfWork,
    patient_ref: str,
    *,
    site_scope: str | None,
    loinc_code: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[StoredMeasurement]:
    """A patient reference's measurements, newest first (only its site's for site staff)."""
    async with uow:
        rows = await MeasurementRepository(uow.session).history(
            patient_ref,
            site_id=site_scope,
            loinc_code=loinc_code,
            since=since,
            until=until,
            limit=limit,
        )
    return [
        StoredMeasurement(
            measurement_id=str(row["measurement_id"]),
            patient_ref=row["patient_ref"],
            device_id=row["device_id"],
            loinc_code=row["loinc_code"],
            ucum_unit=row["ucum_unit"],
            value=row["value"],
            components=[Component(**c) for c in row["components"] or []],
            measured_at=row["measured_at"],
            received_at=row["received_at"],
            abnormal=row["abnormal"],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class MetricSummary:
    minimum: float | None
    maximum: float | None
    percentiles: Mapping[str, float]
    """"p50", "p90", "p95", "p99" → value (empty when there is no report)."""


@dataclass(frozen=True, slots=True)
class CallQualitySummary:
    reports: int
    first_at: datetime | None
    last_at: datetime | None
    metrics: Mapping[str, MetricSummary]
    levels: Mapping[str, int]


async def call_quality_summary(
    uow: UnitOfWork,
    *,
    session_id: str | None = None,
    site_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> CallQualitySummary:
    """Percentiles of rtt, jitter, loss and bitrate over the kiosks' reports of a session
    or of a site (within `site_id` too when the caller is site staff)."""
    async with uow:
        row, levels = await CallQualityRepository(uow.session).summary(
            session_id=session_id, site_id=site_id, since=since, until=until
        )
    metrics = {}
    for metric in QUALITY_METRICS:
        values = row[f"{metric}_p"] or []
        metrics[metric] = MetricSummary(
            minimum=row[f"{metric}_min"],
            maximum=row[f"{metric}_max"],
            percentiles={
                f"p{round(fraction * 100)}": float(value)
                for fraction, value in zip(PERCENTILES, values, strict=False)
                if value is not None
            },
        )
    return CallQualitySummary(
        reports=int(row["reports"]),
        first_at=row["first_at"],
        last_at=row["last_at"],
        metrics=metrics,
        levels=levels,
    )
