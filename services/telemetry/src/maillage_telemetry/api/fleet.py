"""Kiosk health: heartbeats and call quality in, fleet overview and kiosk status out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import AwareDatetime

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import RuntimeDep, UnitOfWorkDep
from maillage_common.http.problems import Problem, field_error
from maillage_telemetry.api.access import site_scope, uploader_of
from maillage_telemetry.api.alerts import alert_read
from maillage_telemetry.api.schemas import (
    CallQualityCreate,
    CallQualitySummaryRead,
    FleetGroupRead,
    FleetOverviewRead,
    HeartbeatCreate,
    HeartbeatRead,
    KioskHealthRead,
    MetricRead,
    PeripheralRead,
)
from maillage_telemetry.settings import TelemetrySettings
from maillage_telemetry.use_cases.common import KioskNotAdmittedError
from maillage_telemetry.use_cases.health import (
    CallQualityReport,
    HeartbeatReport,
    PeripheralReport,
    receive_heartbeat,
    report_call_quality,
)
from maillage_telemetry.use_cases.queries import (
    CallQualitySummary,
    KioskHealth,
    MetricSummary,
    call_quality_summary,
    fleet_overview,
    kiosk_health,
)

router = APIRouter(tags=["fleet"])


def _settings(runtime: RuntimeDep) -> TelemetrySettings:
    settings = runtime.settings
    assert isinstance(settings, TelemetrySettings)
    return settings


def _not_admitted(error: KioskNotAdmittedError) -> Problem:
    return Problem(403, "Forbidden", str(error))


@router.post("/heartbeats", status_code=status.HTTP_202_ACCEPTED)
async def post_heartbeat(
    body: HeartbeatCreate,
    caller: Annotated[Principal, requires(Role.KIOSK, Role.SERVICE)],
    uow: UnitOfWorkDep,
) -> None:
    """A kiosk reports its status, software version, network and peripherals."""
    report = HeartbeatReport(
        status=body.status,
        software_version=body.software_version,
        network_quality=body.network_quality,
        rtt_ms=body.rtt_ms,
        peripherals=[PeripheralReport(p.kind, p.device_id, p.status) for p in body.peripherals],
        sent_at=body.sent_at,
    )
    try:
        await receive_heartbeat(uow, uploader_of(caller, body.kiosk_id), report, datetime.now(UTC))
    except KioskNotAdmittedError as error:
        raise _not_admitted(error) from error


@router.post("/call-quality", status_code=status.HTTP_202_ACCEPTED)
async def post_call_quality(
    body: CallQualityCreate,
    caller: Annotated[Principal, requires(Role.KIOSK, Role.SERVICE)],
    uow: UnitOfWorkDep,
) -> None:
    """A kiosk reports what it measured of a call (rtt, jitter, loss, bitrate): stored for
    the call-quality queries and published. The same report sent twice counts once."""
    report = CallQualityReport(
        session_id=body.session_id,
        role=body.role,
        measured_at=body.measured_at,
        rtt_ms=body.rtt_ms,
        jitter_ms=body.jitter_ms,
        loss_ratio=body.loss_ratio,
        bitrate_kbps=body.bitrate_kbps,
        level=body.level,
    )
    try:
        await report_call_quality(
            uow, uploader_of(caller, body.kiosk_id), report, datetime.now(UTC)
        )
    except KioskNotAdmittedError as error:
        raise _not_admitted(error) from error


def _metric(summary: MetricSummary) -> MetricRead:
    p = summary.percentiles
    return MetricRead(
        min=summary.minimum,
        max=summary.maximum,
        p50=p.get("p50"),
        p90=p.get("p90"),
        p95=p.get("p95"),
        p99=p.get("p99"),
    )


def _summary_read(
    summary: CallQualitySummary,
    *,
    session_id: str | None,
    site_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> CallQualitySummaryRead:
    return CallQualitySummaryRead(
        session_id=session_id,
        site_id=site_id,
        since=since,
        until=until,
        reports=summary.reports,
        first_at=summary.first_at,
        last_at=summary.last_at,
        rtt_ms=_metric(summary.metrics["rtt_ms"]),
        jitter_ms=_metric(summary.metrics["jitter_ms"]),
        loss_ratio=_metric(summary.metrics["loss_ratio"]),
        bitrate_kbps=_metric(summary.metrics["bitrate_kbps"]),
        levels=dict(summary.levels),
    )


_QUALITY_READERS = (Role.COORDINATOR, Role.SERVICE, Role.NURSE)


@router.get("/sessions/{session_id}/call-quality", response_model=CallQualitySummaryRead)
async def get_session_call_quality(
    session_id: Annotated[str, Path(min_length=1, max_length=128)],
    caller: Annotated[Principal, requires(*_QUALITY_READERS)],
    uow: UnitOfWorkDep,
) -> CallQualitySummaryRead:
    """Percentiles (p50/p90/p95/p99, min, max) of what the kiosks measured during a session,
    and reports per quality level (a nurse: her site's kiosks' reports only)."""
    scope = site_scope(caller)
    summary = await call_quality_summary(uow, session_id=session_id, site_id=scope)
    return _summary_read(summary, session_id=session_id, site_id=scope, since=None, until=None)


@router.get("/sites/{site_id}/call-quality", response_model=CallQualitySummaryRead)
async def get_site_call_quality(
    site_id: Annotated[str, Path(min_length=1, max_length=128)],
    caller: Annotated[Principal, requires(*_QUALITY_READERS)],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> CallQualitySummaryRead:
    """The same over a site's kiosks, `since` (default: 24 hours ago) to `until` (now);
    another site's figures are 404 for a nurse."""
    scope = site_scope(caller)
    if scope is not None and scope != site_id:
        raise Problem(404, "Not Found", "no such site")
    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=24)
    if since >= until:
        raise Problem(422, "Invalid request", errors=[field_error("since", "must be before until")])
    summary = await call_quality_summary(uow, site_id=site_id, since=since, until=until)
    return _summary_read(summary, session_id=None, site_id=site_id, since=since, until=until)


@router.get("/fleet/overview", response_model=FleetOverviewRead)
async def get_fleet_overview(
    caller: Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE)],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    departement: str | None = None,
    site_category: str | None = None,
) -> FleetOverviewRead:
    """Kiosks online, degraded and offline by département and site category."""
    now = datetime.now(UTC)
    groups = await fleet_overview(uow, now, _settings(runtime).offline_after)
    return FleetOverviewRead(
        generated_at=now,
        groups=[
            FleetGroupRead(
                departement=g.departement,
                site_category=g.site_category,
                online=g.online,
                degraded=g.degraded,
                offline=g.offline,
                peripherals_in_fault=g.peripherals_in_fault,
            )
            for g in groups
            if departement in (None, g.departement) and site_category in (None, g.site_category)
        ],
    )


@router.get("/kiosks/{kiosk_id}", response_model=KioskHealthRead)
async def get_kiosk(
    kiosk_id: str,
    caller: Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE, Role.NURSE, Role.KIOSK)],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
) -> KioskHealthRead:
    """One kiosk's status, peripherals, recent heartbeats and alerts (404 outside your site)."""
    if Role.KIOSK in caller.roles and caller.roles == {Role.KIOSK} and caller.subject != kiosk_id:
        raise Problem(404, "Not Found", "no such kiosk")
    settings = _settings(runtime)
    health = await kiosk_health(
        uow,
        kiosk_id,
        site_scope=site_scope(caller),
        now=datetime.now(UTC),
        offline_after=settings.offline_after,
        limit=50,
    )
    if health is None:
        raise Problem(404, "Not Found", "no such kiosk")
    return _kiosk_read(health)


def _peripherals(raw: Any) -> list[PeripheralRead]:
    return [PeripheralRead(**p) for p in raw or []]


def _kiosk_read(health: KioskHealth) -> KioskHealthRead:
    state = health.state or {}
    alerts = [alert_read(a) for a in health.alerts]
    return KioskHealthRead(
        kiosk_id=health.kiosk_id,
        site_id=health.site_id,
        departement=health.departement,
        site_category=health.site_category,
        status=health.status,
        reported_status=state.get("reported_status"),
        software_version=state.get("software_version"),
        network_quality=state.get("network_quality"),
        rtt_ms=state.get("rtt_ms"),
        last_heartbeat_at=state.get("last_heartbeat_at"),
        peripherals=_peripherals(state.get("peripherals")),
        open_alerts=[a for a in alerts if a.open],
        alerts=alerts,
        heartbeats=[
            HeartbeatRead(
                received_at=h["received_at"],
                sent_at=h["sent_at"],
                reported_status=h["reported_status"],
                software_version=h["software_version"],
                network_quality=h["network_quality"],
                rtt_ms=h["rtt_ms"],
                peripherals=_peripherals(h["peripherals"]),
            )
            for h in health.heartbeats
        ],
    )
