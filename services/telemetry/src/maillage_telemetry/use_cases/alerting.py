"""Opening and clearing alerts: one open alert per condition, each change an event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import AlertRepository
from maillage_telemetry.domain.alerts import AlertKind, Severity
from maillage_telemetry.metrics import ALERTS_ACKNOWLEDGED, ALERTS_CLEARED, ALERTS_RAISED
from maillage_telemetry.use_cases import contract

RESOLVED = "resolved"


def new_alert(
    *,
    dedup_key: str,
    kind: AlertKind,
    severity: Severity,
    kiosk_id: str,
    site_id: str,
    departement: str,
    raised_at: datetime,
    **details: Any,
) -> dict[str, Any]:
    """The row of a new alert; `details` fill the device/measurement fields."""
    row: dict[str, Any] = {
        "alert_id": uuid.uuid4(),
        "dedup_key": dedup_key,
        "kind": kind.value,
        "severity": severity.value,
        "kiosk_id": kiosk_id,
        "site_id": site_id,
        "departement": departement,
        "device_id": "",
        "device_kind": "",
        "patient_ref": "",
        "measurement_id": "",
        "loinc_code": "",
        "ucum_unit": "",
        "threshold": None,
        "value": None,
        "raised_at": raised_at,
        "cleared_at": None,
        "clear_reason": None,
    }
    row.update(details)
    return row


async def raise_alert(uow: UnitOfWork, alert: dict[str, Any]) -> bool:
    """Open `alert` and record AlertRaised, unless the same condition is already open."""
    if not await AlertRepository(uow.session).open(alert):
        return False
    await uow.record(contract.alert_raised(alert), subject=str(alert["alert_id"]))
    ALERTS_RAISED.labels(alert["kind"], alert["severity"]).inc()
    return True


async def clear_alert(uow: UnitOfWork, dedup_key: str, at: datetime) -> bool:
    """Close the open alert of `dedup_key` (if any) and record AlertCleared."""
    cleared = await AlertRepository(uow.session).clear(dedup_key, at, RESOLVED)
    if cleared is None:
        return False
    await uow.record(contract.alert_cleared(cleared), subject=str(cleared["alert_id"]))
    ALERTS_CLEARED.labels(cleared["kind"]).inc()
    return True


class AlertNotFoundError(LookupError):
    """No such alert (or outside the caller's site)."""


class AlertAlreadyClearedError(Exception):
    """The alert's condition ended before anyone acknowledged it: nothing to acknowledge."""


async def acknowledge_alert(
    uow: UnitOfWork,
    alert_id: uuid.UUID,
    *,
    by: str,
    comment: str | None,
    site_scope: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Acknowledge an active alert and record AlertAcknowledged, in one transaction.

    Idempotent: acknowledging it again answers the first acknowledgement unchanged (no
    second event). The alert stops counting as open but keeps holding its condition, so
    the condition lasting does not raise it again; it is cleared when the condition ends."""
    async with uow:
        alerts = AlertRepository(uow.session)
        current = await alerts.get(alert_id)
        if current is None or (site_scope is not None and current["site_id"] != site_scope):
            raise AlertNotFoundError("no such alert")
        if current["acknowledged_at"] is not None:
            return dict(current)
        if current["cleared_at"] is not None:
            raise AlertAlreadyClearedError("this alert was cleared before being acknowledged")
        acknowledged = await alerts.acknowledge(alert_id, now, by, comment)
        if acknowledged is None:  # cleared or acknowledged by a concurrent request
            raise AlertAlreadyClearedError("this alert changed meanwhile; read it again")
        await uow.record(contract.alert_acknowledged(acknowledged), subject=str(alert_id))
        await uow.commit()
    ALERTS_ACKNOWLEDGED.labels(acknowledged["kind"]).inc()
    return dict(acknowledged)


async def find_alerts(
    uow: UnitOfWork,
    *,
    open_only: bool,
    site_scope: str | None,
    departement: str | None,
    kind: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Alerts newest first, open ones only on request (open: not cleared, not acknowledged)."""
    async with uow:
        rows = await AlertRepository(uow.session).search(
            open_only=open_only,
            site_id=site_scope,
            departement=departement,
            kind=kind,
            limit=limit,
        )
    return [dict(r) for r in rows]


async def open_alert_counts(uow: UnitOfWork) -> list[tuple[str, str, int]]:
    """(kind, département, count) of alerts still open, for the gauges."""
    async with uow:
        return await AlertRepository(uow.session).open_counts()
