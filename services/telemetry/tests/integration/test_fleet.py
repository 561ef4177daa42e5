"""Heartbeats → kiosk status, peripheral and offline alerts (deduplicated), fleet overview."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from maillage.telemetry.v1 import events_pb2
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_devstack.service_testing import eventually

from telemetry_testing import bearer, kiosk_changed, publish, read_events, site_changed

pytestmark = pytest.mark.integration
PACKAGE = "maillage_telemetry"


def heartbeat(oximeter: str = "ok", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "ready",
        "software_version": "2.4.1",
        "network_quality": "good",
        "rtt_ms": 42,
        "peripherals": [
            {"kind": "oximeter", "device_id": "oxi-1", "status": oximeter},
            {"kind": "thermometer", "device_id": "thermo-1", "status": "ok"},
        ],
        "sent_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


async def _kiosk(client: httpx.AsyncClient, kiosk_id: str, token: str) -> dict[str, Any]:
    answer = await client.get(f"/kiosks/{kiosk_id}", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_heartbeats_drive_status_and_peripheral_alerts_with_the_directory_placement(
    service_app: ServiceApp, mint: Mint, kafka_bootstrap_servers: str
) -> None:
    kiosk_id, site_id = str(uuid.uuid4()), str(uuid.uuid4())
    await publish(kafka_bootstrap_servers, site_changed(site_id, "2A", version=2), site_id)
    # An older snapshot delivered late must not win over version 2.
    await publish(kafka_bootstrap_servers, site_changed(site_id, "99", version=1), site_id)
    await publish(kafka_bootstrap_servers, kiosk_changed(kiosk_id, site_id, version=1), kiosk_id)
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=site_id))
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):

        async def placed() -> dict[str, Any] | None:
            answer = await client.get(f"/kiosks/{kiosk_id}", headers=bearer(coordinator))
            if answer.status_code == 404:  # the snapshot is still on its way
                return None
            found: dict[str, Any] = answer.json()
            return found if found["departement"] == "2A" else None

        await eventually(placed, "the directory snapshots never reached the read model")

        for _ in range(3):  # a storm of identical faults raises one alert
            answer = await client.post("/heartbeats", json=heartbeat("fault"), headers=kiosk)
            assert answer.status_code == 202, answer.text
        state = await _kiosk(client, kiosk_id, coordinator)
        assert state["status"] == "degraded"
        assert state["site_category"] == "ehpad"
        assert [(a["kind"], a["device_id"]) for a in state["open_alerts"]] == [
            ("peripheral_fault", "oxi-1")
        ]
        assert len(state["heartbeats"]) == 3

        overview = await client.get(
            "/fleet/overview", params={"departement": "2A"}, headers=bearer(coordinator)
        )
        groups = overview.json()["groups"]
        assert any(g["site_category"] == "ehpad" and g["degraded"] >= 1 for g in groups)

        await client.post("/heartbeats", json=heartbeat("ok"), headers=kiosk)
        state = await _kiosk(client, kiosk_id, coordinator)
        assert state["status"] == "online"
        assert state["open_alerts"] == []
        assert state["alerts"][0]["clear_reason"] == "resolved"

        other_nurse = bearer(mint("nurse", site_id=str(uuid.uuid4())))
        assert (await client.get(f"/kiosks/{kiosk_id}", headers=other_nurse)).status_code == 404
        own_nurse = mint("nurse", site_id=site_id)
        assert (await _kiosk(client, kiosk_id, own_nurse))["status"] == "online"
        metrics = (await client.get("/metrics")).text
        assert "maillage_telemetry_alerts_raised_total" in metrics

        await publish(
            kafka_bootstrap_servers,
            kiosk_changed(kiosk_id, site_id, version=2, revoked=True),
            kiosk_id,
        )

        async def refused() -> bool | None:
            answer = await client.post("/heartbeats", json=heartbeat(), headers=kiosk)
            return True if answer.status_code == 403 else None

        await eventually(refused, "a revoked kiosk was still admitted")

    def ours(ce_type: str, value: bytes) -> bool:
        if ce_type == events_pb2.AlertRaised.DESCRIPTOR.full_name:
            return events_pb2.AlertRaised.FromString(value).kiosk_id == kiosk_id
        if ce_type == events_pb2.AlertCleared.DESCRIPTOR.full_name:
            return events_pb2.AlertCleared.FromString(value).kiosk_id == kiosk_id
        return False

    alerts = await read_events(
        kafka_bootstrap_servers, "telemetry.alerts", ours, until=lambda f: len(f) >= 2
    )
    assert [t.rsplit(".", 1)[1] for t, _ in alerts] == ["AlertRaised", "AlertCleared"]
    raised = events_pb2.AlertRaised.FromString(alerts[0][1])
    assert raised.kind == events_pb2.ALERT_KIND_PERIPHERAL_FAULT
    assert raised.departement == "2A"


async def test_a_silent_kiosk_goes_offline_once_and_comes_back(
    service_app: ServiceApp, mint: Mint, kafka_bootstrap_servers: str
) -> None:
    kiosk_id, site_id = str(uuid.uuid4()), str(uuid.uuid4())
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=site_id))
    coordinator = mint("coordinator")
    settings: dict[str, Any] = {"offline_after_seconds": 1.0, "offline_check_interval_seconds": 0.2}
    async with service_app(PACKAGE, **settings) as (_, client):
        first = await client.post("/heartbeats", json=heartbeat(), headers=kiosk)
        assert first.status_code == 202

        async def offline() -> dict[str, Any] | None:
            found = await _kiosk(client, kiosk_id, coordinator)
            return found if found["open_alerts"] else None

        state = await eventually(offline, "the silent kiosk never went offline")
        assert state["status"] == "offline"
        assert [a["kind"] for a in state["open_alerts"]] == ["kiosk_offline"]
        # Let the watchdog run several more rounds (0.2 s apart): still one alert.
        await asyncio.sleep(1.0)
        assert len((await _kiosk(client, kiosk_id, coordinator))["alerts"]) == 1

        await client.post("/heartbeats", json=heartbeat(), headers=kiosk)
        state = await _kiosk(client, kiosk_id, coordinator)
        assert state["open_alerts"] == []

    def ours(ce_type: str, value: bytes) -> bool:
        if ce_type == events_pb2.AlertRaised.DESCRIPTOR.full_name:
            return events_pb2.AlertRaised.FromString(value).kiosk_id == kiosk_id
        if ce_type == events_pb2.AlertCleared.DESCRIPTOR.full_name:
            return events_pb2.AlertCleared.FromString(value).kiosk_id == kiosk_id
        return False

    alerts = await read_events(
        kafka_bootstrap_servers, "telemetry.alerts", ours, until=lambda f: len(f) >= 2
    )
    assert [t.rsplit(".", 1)[1] for t, _ in alerts[:2]] == ["AlertRaised", "AlertCleared"]
    assert events_pb2.AlertRaised.FromString(alerts[0][1]).kind == (
        events_pb2.ALERT_KIND_KIOSK_OFFLINE
    )
