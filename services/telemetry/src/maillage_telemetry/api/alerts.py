"""Alerts: list them, acknowledge one (who, when, comment)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem
from maillage_telemetry.api.access import site_scope
from maillage_telemetry.api.schemas import AlertAcknowledge, AlertListRead, AlertRead
from maillage_telemetry.domain.alerts import AlertKind
from maillage_telemetry.use_cases.alerting import (
    AlertAlreadyClearedError,
    AlertNotFoundError,
    acknowledge_alert,
    find_alerts,
)

router = APIRouter(tags=["alerts"])


def alert_read(row: Mapping[str, Any]) -> AlertRead:
    return AlertRead(
        alert_id=row["alert_id"],
        kind=row["kind"],
        severity=row["severity"],
        kiosk_id=row["kiosk_id"],
        site_id=row["site_id"],
        departement=row["departement"],
        device_id=row["device_id"],
        device_kind=row["device_kind"],
        loinc_code=row["loinc_code"],
        ucum_unit=row["ucum_unit"],
        threshold=row["threshold"],
        value=row["value"],
        raised_at=row["raised_at"],
        cleared_at=row["cleared_at"],
        clear_reason=row["clear_reason"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        acknowledgement_comment=row["acknowledgement_comment"],
        open=row["cleared_at"] is None and row["acknowledged_at"] is None,
    )


@router.get("/alerts", response_model=AlertListRead)
async def get_alerts(
    caller: Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE, Role.NURSE)],
    uow: UnitOfWorkDep,
    open_only: Annotated[bool, Query(alias="open")] = True,
    departement: Annotated[str | None, Query(max_length=3)] = None,
    kind: AlertKind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertListRead:
    """Alerts newest first; by default only open ones (neither cleared nor acknowledged).
    A nurse sees her site's."""
    rows = await find_alerts(
        uow,
        open_only=open_only,
        site_scope=site_scope(caller),
        departement=departement,
        kind=kind.value if kind else None,
        limit=limit,
    )
    return AlertListRead(alerts=[alert_read(r) for r in rows])


@router.post("/alerts/{alert_id}/acknowledgement", response_model=AlertRead)
async def post_acknowledgement(
    alert_id: uuid.UUID,
    body: AlertAcknowledge,
    caller: Annotated[Principal, requires(Role.COORDINATOR, Role.NURSE)],
    uow: UnitOfWorkDep,
) -> AlertRead:
    """Acknowledge an alert (a nurse: her site's). Idempotent: the first acknowledgement
    stands. A cleared alert answers 409; another site's alert 404."""
    try:
        row = await acknowledge_alert(
            uow,
            alert_id,
            by=caller.subject,
            comment=body.comment,
            site_scope=site_scope(caller),
            now=datetime.now(UTC),
        )
    except AlertNotFoundError as error:
        raise Problem(404, "Not Found", str(error)) from error
    except AlertAlreadyClearedError as error:
        raise Problem(409, "Conflict", str(error)) from error
    return alert_read(row)
