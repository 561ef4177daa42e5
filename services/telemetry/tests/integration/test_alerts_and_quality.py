"""Alert acknowledgement (who, when, comment; idempotent; event through the outbox) and
stored call-quality reports with percentiles per session and per site."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from maillage.telemetry.v1 import events_pb2
from maillage_devstack.pytest_plugin import Mint, ServiceApp

from telemetry_testing import bearer, read_events

pytestmark = pytest.mark.integration
PACKAGE = "maillage_telemetry"


def _heartbeat(oximeter: str) -> dict[str, Any]:
    return {
        "status": "ready",
        "software_version": "2.4.1",
        "peripherals": [{"kind": "oximeter", "device_id": "oxi-ack", "status": oximeter}],
        "sent_at": datetime.now(UTC).isoformat(),
    }


async def test_an_acknowledged_alert_is_no_longer_open_and_is_not_raised_again(
    service_app: ServiceApp, mint: Mint, kafka_bootstrap_servers: str
) -> None:
    kiosk_id, site_id = str(uuid.uuid4()), str(uuid.uuid4())
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=site_id))
    nurse = bearer(mint("nurse", subject="nurse-1", site_id=site_id))
    async with service_app(PACKAGE) as (_, client):
        faulty = await client.post("/heartbeats", json=_heartbeat("fault"), headers=kiosk)
        assert faulty.status_code == 202
        listed = await client.get("/alerts", headers=nurse)
        assert [a["kiosk_id"] for a in listed.json()["alerts"]] == [kiosk_id]
        alert_id = listed.json()["alerts"][0]["alert_id"]
        path = f"/alerts/{alert_id}/acknowledgement"

        far_nurse = bearer(mint("nurse", site_id=str(uuid.uuid4())))
        assert (await client.post(path, json={}, headers=far_nurse)).status_code == 404
        assert (await client.post(path, json={}, headers=kiosk)).status_code == 403
        blank = await client.post(path, json={"comment": ""}, headers=nurse)
        assert blank.status_code == 422
        assert blank.json()["errors"][0]["field"].endswith("comment")

        first = await client.post(path, json={"comment": "technician called"}, headers=nurse)
        assert first.status_code == 200, first.text
        acknowledged = first.json()
        assert (acknowledged["open"], acknowledged["acknowledged_by"]) == (False, "nurse-1")
        assert acknowledged["acknowledgement_comment"] == "technician called"
        coordinator = bearer(mint("coordinator", subject="coord-1"))
        again = await client.post(path, json={"comment": "seen"}, headers=coordinator)
        assert again.json() == acknowledged

        # Still faulty: no second alert, and nothing open for the nurse.
        await client.post("/heartbeats", json=_heartbeat("fault"), headers=kiosk)
        assert (await client.get("/alerts", headers=nurse)).json()["alerts"] == []
        every = await client.get("/alerts", params={"open": "false"}, headers=nurse)
        assert len(every.json()["alerts"]) == 1
        state = (await client.get(f"/kiosks/{kiosk_id}", headers=nurse)).json()
        assert state["open_alerts"] == []

        # The condition ends: the acknowledged alert is cleared as resolved.
        await client.post("/heartbeats", json=_heartbeat("ok"), headers=kiosk)
        cleared = (await client.get("/alerts", params={"open": "false"}, headers=nurse)).json()
        assert cleared["alerts"][0]["clear_reason"] == "resolved"
        # A new fault, cleared before anyone looked: acknowledging it is a conflict.
        await client.post("/heartbeats", json=_heartbeat("fault"), headers=kiosk)
        fresh = (await client.get("/alerts", headers=nurse)).json()["alerts"][0]["alert_id"]
        await client.post("/heartbeats", json=_heartbeat("ok"), headers=kiosk)
        late = await client.post(f"/alerts/{fresh}/acknowledgement", json={}, headers=nurse)
        assert late.status_code == 409

    def ours(ce_type: str, value: bytes) -> bool:
        return (
            ce_type == events_pb2.AlertAcknowledged.DESCRIPTOR.full_name
            and events_pb2.AlertAcknowledged.FromString(value).kiosk_id == kiosk_id
        )

    found = await read_events(
        kafka_bootstrap_servers, "telemetry.alerts", ours, until=lambda f: len(f) >= 1
    )
    event = events_pb2.AlertAcknowledged.FromString(found[0][1])
    assert (event.alert_id, event.acknowledged_by, event.has_comment) == (
        alert_id,
        "nurse-1",
        True,
    )
    assert event.kind == events_pb2.ALERT_KIND_PERIPHERAL_FAULT


def _report(session_id: str, at: datetime, rtt_ms: int, level: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "role": "patient",
        "measured_at": at.isoformat(),
        "rtt_ms": rtt_ms,
        "jitter_ms": rtt_ms // 10,
        "loss_ratio": rtt_ms / 10_000,
        "bitrate_kbps": 1000 - rtt_ms,
        "level": level,
    }


async def test_call_quality_reports_are_stored_once_and_summarised_with_percentiles(
    service_app: ServiceApp, mint: Mint
) -> None:
    kiosk_id, site_id, session_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=site_id))
    start = datetime.now(UTC) - timedelta(minutes=10)
    reports = [
        _report(session_id, start + timedelta(seconds=10 * i), rtt, level)
        for i, (rtt, level) in enumerate(
            [(100, "excellent"), (200, "good"), (300, "good"), (400, "poor")]
        )
    ]
    async with service_app(PACKAGE) as (_, client):
        for report in [*reports, reports[0]]:  # the first one twice: stored once
            answer = await client.post("/call-quality", json=report, headers=kiosk)
            assert answer.status_code == 202, answer.text
        nurse = bearer(mint("nurse", site_id=site_id))
        by_session = await client.get(f"/sessions/{session_id}/call-quality", headers=nurse)
        assert by_session.status_code == 200, by_session.text
        summary = by_session.json()
        assert summary["reports"] == 4
        assert summary["levels"] == {"excellent": 1, "good": 2, "poor": 1}
        rtt = summary["rtt_ms"]
        # percentile_cont interpolates: p50 of 100..400 is 250, p90 is 370.
        assert (rtt["min"], rtt["p50"], rtt["p90"], rtt["max"]) == (100, 250, 370, 400)
        assert summary["bitrate_kbps"]["p50"] == 750

        coordinator = bearer(mint("coordinator"))
        by_site = await client.get(f"/sites/{site_id}/call-quality", headers=coordinator)
        assert by_site.json()["reports"] == 4
        window = {"since": (start + timedelta(seconds=15)).isoformat()}
        later = await client.get(f"/sites/{site_id}/call-quality", params=window, headers=nurse)
        assert later.json()["reports"] == 2

        far_nurse = bearer(mint("nurse", site_id=str(uuid.uuid4())))
        hidden = await client.get(f"/sessions/{session_id}/call-quality", headers=far_nurse)
        assert hidden.json()["reports"] == 0
        other = await client.get(f"/sites/{site_id}/call-quality", headers=far_nurse)
        assert other.status_code == 404
        responder = bearer(mint("responder"))
        denied = await client.get(f"/sites/{site_id}/call-quality", headers=responder)
        assert denied.status_code == 403
        naive = await client.get(
            f"/sites/{site_id}/call-quality",
            params={"since": "2026-11-22T09:00:00"},
            headers=coordinator,
        )
        assert naive.status_code == 422
