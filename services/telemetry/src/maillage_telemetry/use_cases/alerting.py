"""Opening and clearing alerts: one open alert per condition, each change an event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import AlertRepository
from maillage_telemetry.domain.alerts import AlertKind, Severity
from maillage_telemetry.metrics import ALERTS_CLEARED, ALERTS_RAISED
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
