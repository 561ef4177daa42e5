"""Batch ingest → outbox → Kafka → the service's consumer → PostgreSQL → queries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from maillage.common.v1 import types_pb2
from maillage.telemetry.v1 import events_pb2
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_devstack.service_testing import eventually

from telemetry_testing import bearer, device_id, enrol, iso, item, read_events

pytestmark = pytest.mark.integration
PACKAGE = "maillage_telemetry"


async def _grant(client: httpx.AsyncClient, mint: Mint, patient_ref: str) -> None:
    answer = await client.put(
        f"/consents/{patient_ref}",
        json={"granted": True},
        headers=bearer(mint("nurse", site_id="site-x")),
    )
    assert answer.status_code == 200, answer.text


async def test_a_batch_is_answered_per_item_and_accepted_items_become_queryable(
    service_app: ServiceApp, mint: Mint, kafka_bootstrap_servers: str
) -> None:
    kiosk_id, site_id = str(uuid.uuid4()), str(uuid.uuid4())
    patient, stranger = f"pref-{uuid.uuid4().hex}", f"pref-{uuid.uuid4().hex}"
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=site_id))
    oxi, monitor, thermo = device_id("oxi"), device_id("bp"), device_id("thermo")
    good = item(patient, oxi, value=97)
    low = item(patient, oxi, value=85)
    pressure = item(
        patient,
        monitor,
        device_kind="blood_pressure_monitor",
        loinc_code="85354-9",
        ucum_unit="mm[Hg]",
        value=None,
        components=[
            {"loinc_code": "8480-6", "ucum_unit": "mm[Hg]", "value": 121},
            {"loinc_code": "8462-4", "ucum_unit": "mm[Hg]", "value": 79},
        ],
    )
    items: list[dict[str, Any]] = [
        good,
        low,
        pressure,
        item(patient, thermo, loinc_code="8310-5", ucum_unit="Cel", value=50),
        item(patient, thermo, loinc_code="8310-5", ucum_unit="[degF]", value=98),
        item(stranger, oxi),
        {k: v for k, v in item(patient, oxi).items() if k != "measured_at"},
        item(patient, oxi, measured_at="2026-11-22T09:00:00"),
        dict(good, measurement_id=str(uuid.uuid4())),
        item(patient, oxi, measured_at=iso(datetime.now(UTC) + timedelta(minutes=10))),
        # A device never enrolled on this kiosk: refused, the others still pass.
        item(patient, device_id("oxi")),
    ]
    async with service_app(PACKAGE) as (_, client):
        await _grant(client, mint, patient)
        await enrol(client, kiosk, kiosk_id, oxi)
        await enrol(client, kiosk, kiosk_id, monitor, "blood_pressure_monitor")
        await enrol(client, kiosk, kiosk_id, thermo, "thermometer")
        answer = await client.post(
            "/measurements/batch", json={"items": items, "kiosk_id": "ignored"}, headers=kiosk
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        outcomes = [(i["outcome"], [e["field"] for e in i["errors"]]) for i in body["items"]]
        assert outcomes == [
            ("accepted", []),
            ("accepted", []),
            ("accepted", []),
            ("rejected", ["value"]),
            ("rejected", ["ucum_unit"]),
            ("rejected", ["patient_ref"]),
            ("rejected", ["measured_at"]),
            ("rejected", ["measured_at"]),
            ("duplicate", []),
            ("rejected", ["measured_at"]),
            ("rejected", ["device_id"]),
        ]
        assert [i["abnormal"] for i in body["items"][:3]] == [False, True, False]
        assert (body["accepted"], body["duplicate"], body["rejected"]) == (3, 1, 7)

        again = await client.post("/measurements/batch", json={"items": [good]}, headers=kiosk)
        assert again.json()["items"][0]["outcome"] == "duplicate"

        responder = bearer(mint("responder", rpps="10000000008"))

        async def stored() -> list[dict[str, Any]] | None:
            history = await client.get(f"/patients/{patient}/measurements", headers=responder)
            assert history.status_code == 200, history.text
            found: list[dict[str, Any]] = history.json()["measurements"]
            return found if len(found) >= 3 else None

        measurements = await eventually(stored, "the accepted measurements were never stored")
        assert sorted(m["measurement_id"] for m in measurements) == sorted(
            m["measurement_id"] for m in (good, low, pressure)
        )
        bp = next(m for m in measurements if m["loinc_code"] == "85354-9")
        assert {c["loinc_code"]: c["value"] for c in bp["components"]} == {
            "8480-6": 121,
            "8462-4": 79,
        }

        fhir = await client.get(f"/patients/{patient}/observations", headers=responder)
        assert fhir.headers["content-type"].startswith("application/fhir+json")
        bundle = fhir.json()
        assert bundle["resourceType"] == "Bundle"
        assert bundle["total"] == 3
        assert {e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]} == {
            "59408-5",
            "85354-9",
        }

        other_site_nurse = bearer(mint("nurse", site_id=str(uuid.uuid4())))
        hidden = await client.get(f"/patients/{patient}/measurements", headers=other_site_nurse)
        assert hidden.json()["measurements"] == []

    def threshold_alert(ce_type: str, value: bytes) -> bool:
        if ce_type != events_pb2.AlertRaised.DESCRIPTOR.full_name:
            return False
        alert = events_pb2.AlertRaised.FromString(value)
        return alert.patient_ref == patient

    alerts = await read_events(
        kafka_bootstrap_servers, "telemetry.alerts", threshold_alert, until=lambda f: len(f) >= 1
    )
    raised = events_pb2.AlertRaised.FromString(alerts[0][1])
    assert raised.kind == events_pb2.ALERT_KIND_MEASUREMENT_THRESHOLD
    assert raised.measurement_id == low["measurement_id"]
    assert raised.value == 85
    assert raised.threshold == 90
    assert raised.kiosk_id == kiosk_id


async def _protobuf_upload_is_answered_like_json(
    client: httpx.AsyncClient, mint: Mint, patient: str
) -> None:
    kiosk_id = str(uuid.uuid4())
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=str(uuid.uuid4())))
    bp = device_id("bp")
    await enrol(client, kiosk, kiosk_id, bp, "blood_pressure_monitor")
    at = datetime.now(UTC) - timedelta(seconds=5)
    good = events_pb2.Measurement(
        measurement_id=str(uuid.uuid4()),
        device_id=bp,
        device_kind=types_pb2.DEVICE_KIND_BLOOD_PRESSURE_MONITOR,
        patient_ref=patient,
        loinc_code="85354-9",
        ucum_unit="mm[Hg]",
        components=[
            events_pb2.MeasurementComponent(loinc_code="8480-6", ucum_unit="mm[Hg]", value=190),
            events_pb2.MeasurementComponent(loinc_code="8462-4", ucum_unit="mm[Hg]", value=95),
        ],
    )
    good.measured_at.FromDatetime(at)
    undated = events_pb2.Measurement(
        measurement_id=str(uuid.uuid4()),
        device_id=bp,
        patient_ref=patient,
        loinc_code="8310-5",
        ucum_unit="Cel",
        value=37.2,
    )
    upload = events_pb2.MeasurementUpload(measurements=[good, undated])
    answer = await client.post(
        "/measurements/batch",
        content=upload.SerializeToString(),
        headers={**kiosk, "Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [(i["outcome"], i["abnormal"]) for i in items] == [
        ("accepted", True),
        ("rejected", False),
    ]
    assert items[1]["errors"][0]["field"] == "measured_at"
    garbage = await client.post(
        "/measurements/batch",
        content=b"\xff\xff\xff",
        headers={**kiosk, "Content-Type": "application/x-protobuf"},
    )
    assert garbage.status_code == 422


async def test_upload_access_limits_and_protobuf(service_app: ServiceApp, mint: Mint) -> None:
    patient = f"pref-{uuid.uuid4().hex}"
    async with service_app(PACKAGE, max_batch_items=2) as (_, client):
        await _grant(client, mint, patient)
        oxi, gateway_kiosk = device_id("oxi"), str(uuid.uuid4())
        batch = {"items": [item(patient, oxi)]}
        assert (await client.post("/measurements/batch", json=batch)).status_code == 401
        nurse = bearer(mint("nurse", site_id="s"))
        assert (
            await client.post("/measurements/batch", json=batch, headers=nurse)
        ).status_code == 403
        siteless_kiosk = bearer(mint("kiosk", subject="k"))
        assert (
            await client.post("/measurements/batch", json=batch, headers=siteless_kiosk)
        ).status_code == 403
        service = bearer(mint("service", subject="gateway"))
        await enrol(client, service, gateway_kiosk, oxi)
        unnamed = await client.post("/measurements/batch", json=batch, headers=service)
        assert unnamed.status_code == 422
        assert unnamed.json()["errors"][0]["field"] == "kiosk_id"
        named = await client.post(
            "/measurements/batch", json={**batch, "kiosk_id": gateway_kiosk}, headers=service
        )
        assert named.json()["accepted"] == 1
        too_many = {"items": [item(patient, oxi) for _ in range(3)]}
        large = await client.post("/measurements/batch", json=too_many, headers=service)
        assert large.status_code == 413
        assert large.headers["content-type"] == "application/problem+json"
        await _protobuf_upload_is_answered_like_json(client, mint, patient)
        unsupported = await client.post(
            "/measurements/batch",
            content=b"x",
            headers={**service, "Content-Type": "text/plain"},
        )
        assert unsupported.status_code == 415
        coordinator = bearer(mint("coordinator"))
        forbidden = await client.get(f"/patients/{patient}/measurements", headers=coordinator)
        assert forbidden.status_code == 403
        naive = await client.get(
            f"/patients/{patient}/measurements",
            params={"since": "2026-11-22T09:00:00"},
            headers=bearer(mint("responder")),
        )
        assert naive.status_code == 422
