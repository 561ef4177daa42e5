"""Kiosk health: heartbeats, offline detection, peripheral faults, call quality."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maillage.telemetry.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import (
    CallQualityRepository,
    DirectoryRepository,
    KioskHealthRepository,
    RetentionRepository,
)
from maillage_telemetry.domain.alerts import AlertKind, Severity, offline_key, peripheral_key
from maillage_telemetry.domain.fleet import (
    NetworkQuality,
    PeripheralState,
    ReportedStatus,
    is_faulty,
)
from maillage_telemetry.use_cases import contract
from maillage_telemetry.use_cases.alerting import clear_alert, new_alert, raise_alert
from maillage_telemetry.use_cases.common import Uploader, admit


@dataclass(frozen=True, slots=True)
class PeripheralReport:
    kind: str
    device_id: str
    status: PeripheralState


@dataclass(frozen=True, slots=True)
class HeartbeatReport:
    status: ReportedStatus
    software_version: str
    network_quality: NetworkQuality | None
    rtt_ms: int | None
    peripherals: Sequence[PeripheralReport]
    sent_at: datetime


async def receive_heartbeat(
    uow: UnitOfWork, uploader: Uploader, report: HeartbeatReport, now: datetime
) -> None:
    """Update the kiosk's state, clear its offline alert, raise or clear peripheral faults,
    and record KioskHeartbeatReceived — all in one transaction."""
    async with uow:
        placement = await DirectoryRepository(uow.session).placement(
            uploader.kiosk_id, uploader.site_id
        )
        admit(placement)
        await KioskHealthRepository(uow.session).record_heartbeat(
            {
                "kiosk_id": uploader.kiosk_id,
                "site_id": placement.site_id,
                "reported_status": report.status.value,
                "software_version": report.software_version,
                "network_quality": report.network_quality.value if report.network_quality else None,
                "rtt_ms": report.rtt_ms,
                "peripherals": [
                    {"kind": p.kind, "device_id": p.device_id, "status": p.status.value}
                    for p in report.peripherals
                ],
                "last_heartbeat_at": now,
            },
            report.sent_at,
        )
        await clear_alert(uow, offline_key(uploader.kiosk_id), now)
        for peripheral in report.peripherals:
            key = peripheral_key(uploader.kiosk_id, peripheral.device_id)
            if not is_faulty(peripheral.status):
                await clear_alert(uow, key, now)
                continue
            alert = new_alert(
                dedup_key=key,
                kind=AlertKind.PERIPHERAL_FAULT,
                severity=Severity.WARNING,
                kiosk_id=uploader.kiosk_id,
                site_id=placement.site_id,
                departement=placement.departement,
                raised_at=now,
                device_id=peripheral.device_id,
                device_kind=peripheral.kind,
            )
            await raise_alert(uow, alert)
        await uow.record(
            _heartbeat_event(uploader, placement.site_id, placement.departement, report, now),
            subject=uploader.kiosk_id,
        )
        await uow.commit()


def _heartbeat_event(
    uploader: Uploader, site_id: str, departement: str, report: HeartbeatReport, now: datetime
) -> events_pb2.KioskHeartbeatReceived:
    return events_pb2.KioskHeartbeatReceived(
        kiosk_id=uploader.kiosk_id,
        site_id=site_id,
        departement=departement,
        status=contract.kiosk_status(report.status.value),
        software_version=report.software_version,
        network_quality=contract.quality_level(
            report.network_quality.value if report.network_quality else None
        ),
        rtt_ms=report.rtt_ms or 0,
        peripherals=[
            events_pb2.Peripheral(
                kind=contract.device_kind(p.kind),
                device_id=p.device_id,
                status=contract.peripheral_status(p.status.value),
            )
            for p in report.peripherals
        ],
        sent_at=contract.timestamp(report.sent_at),
        received_at=contract.timestamp(now),
    )


async def detect_offline_kiosks(
    sessions: async_sessionmaker[AsyncSession], now: datetime, offline_after: timedelta
) -> int:
    """Mark kiosks silent for longer than `offline_after` offline and raise one alert each.

    Each kiosk gets its own transaction, so one failure does not hold back the others;
    replicas running this at once are safe (the conditional update and the open-alert
    index let only one of them raise)."""
    cutoff = now - offline_after
    async with UnitOfWork(sessions) as uow:
        silent = await KioskHealthRepository(uow.session).silent_since(cutoff)
    raised = 0
    for kiosk_id in silent:
        async with UnitOfWork(sessions) as uow:
            state = await KioskHealthRepository(uow.session).mark_offline(kiosk_id, cutoff)
            if state is None:
                continue
            placement = await DirectoryRepository(uow.session).placement(kiosk_id, state["site_id"])
            alert = new_alert(
                dedup_key=offline_key(kiosk_id),
                kind=AlertKind.KIOSK_OFFLINE,
                severity=Severity.CRITICAL,
                kiosk_id=kiosk_id,
                site_id=placement.site_id,
                departement=placement.departement,
                raised_at=now,
            )
            raised += int(await raise_alert(uow, alert))
            await uow.commit()
    return raised


async def prune_expired(
    sessions: async_sessionmaker[AsyncSession], now: datetime, retention: timedelta
) -> int:
    """Delete measurements, their keys and heartbeats older than the retention period
    (a bounded slice per call, so the watchdog round stays short)."""
    async with UnitOfWork(sessions) as uow:
        deleted = await RetentionRepository(uow.session).prune(now - retention, limit=10_000)
        await uow.commit()
    return deleted


@dataclass(frozen=True, slots=True)
class CallQualityReport:
    session_id: str
    role: str | None
    measured_at: datetime
    rtt_ms: int
    jitter_ms: int
    loss_ratio: float
    bitrate_kbps: int
    level: NetworkQuality


async def report_call_quality(
    uow: UnitOfWork, uploader: Uploader, report: CallQualityReport, now: datetime
) -> bool:
    """Store what the kiosk measured during a session and publish it (statistics consumes
    it). A report sent twice (same kiosk, session and instant) is stored and published
    once; returns whether it was new."""
    async with uow:
        placement = await DirectoryRepository(uow.session).placement(
            uploader.kiosk_id, uploader.site_id
        )
        admit(placement)
        fresh = await CallQualityRepository(uow.session).add(
            {
                "kiosk_id": uploader.kiosk_id,
                "site_id": placement.site_id,
                "departement": placement.departement,
                "session_id": report.session_id,
                "role": report.role,
                "measured_at": report.measured_at,
                "received_at": now,
                "rtt_ms": report.rtt_ms,
                "jitter_ms": report.jitter_ms,
                "loss_ratio": report.loss_ratio,
                "bitrate_kbps": report.bitrate_kbps,
                "level": report.level.value,
            }
        )
        if not fresh:
            return False
        event = events_pb2.CallQualityReported(
            kiosk_id=uploader.kiosk_id,
            site_id=placement.site_id,
            departement=placement.departement,
            session_id=report.session_id,
            role=contract.participant_role(report.role),
            measured_at=contract.timestamp(report.measured_at),
            rtt_ms=report.rtt_ms,
            jitter_ms=report.jitter_ms,
            loss_ratio=report.loss_ratio,
            bitrate_kbps=report.bitrate_kbps,
            level=contract.quality_level(report.level.value),
        )
        await uow.record(event, subject=uploader.kiosk_id)
        await uow.commit()
    return True
