"""Failure drills: a republished batch is stored once; PostgreSQL away answers 503; the
broker away loses nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from maillage.telemetry.v1 import events_pb2
from maillage_devstack.infra import EmbeddedKafka, EmbeddedPostgres
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_devstack.service_testing import eventually
from maillage_telemetry.use_cases.health import prune_expired

from telemetry_testing import bearer, device_id, enrol, item, publish

pytestmark = pytest.mark.integration
PACKAGE = "maillage_telemetry"


def _batch(kiosk_id: str, patient: str, measurement_id: str, at: datetime) -> Any:
    measurement = events_pb2.Measurement(
        measurement_id=measurement_id,
        device_id=f"oxi-{kiosk_id}",
        kiosk_id=kiosk_id,
        site_id="site-r",
        patient_ref=patient,
        loinc_code="59408-5",
        ucum_unit="%",
        value=96,
    )
    measurement.measured_at.FromDatetime(at)
    measurement.received_at.FromDatetime(at)
    batch = events_pb2.MeasurementBatchIngested(
        batch_id=str(uuid.uuid4()), kiosk_id=kiosk_id, site_id="site-r", measurements=[measurement]
    )
    batch.ingested_at.FromDatetime(at)
    return batch


async def test_a_batch_republished_under_a_new_event_id_is_stored_once(
    service_app: ServiceApp, mint: Mint, kafka_bootstrap_servers: str
) -> None:
    kiosk_id, patient = str(uuid.uuid4()), f"pref-{uuid.uuid4().hex}"
    at = datetime.now(UTC) - timedelta(minutes=2)
    twice = str(uuid.uuid4())
    # Same reading, two event ids (a relay crash between ack and delete, or a replay);
    # then a marker on the same key, hence the same partition, consumed after them.
    await publish(kafka_bootstrap_servers, _batch(kiosk_id, patient, twice, at), kiosk_id)
    await publish(kafka_bootstrap_servers, _batch(kiosk_id, patient, twice, at), kiosk_id)
    marker = str(uuid.uuid4())
    later = at + timedelta(seconds=1)
    await publish(kafka_bootstrap_servers, _batch(kiosk_id, patient, marker, later), kiosk_id)
    responder = bearer(mint("responder"))
    async with service_app(PACKAGE) as (app, client):

        async def marker_stored() -> list[str] | None:
            answer = await client.get(f"/patients/{patient}/measurements", headers=responder)
            ids = [m["measurement_id"] for m in answer.json()["measurements"]]
            return ids if marker in ids else None

        ids = await eventually(marker_stored, "the marker batch was never stored")
        assert sorted(ids) == sorted([twice, marker])

        # A year and a bit later, retention removes them.
        future = datetime.now(UTC) + timedelta(days=400)
        assert await prune_expired(app.state.runtime.sessions, future, timedelta(days=365)) >= 2
        answer = await client.get(f"/patients/{patient}/measurements", headers=responder)
        assert answer.json()["measurements"] == []


async def test_postgresql_away_answers_503_then_recovers(
    service_app: ServiceApp, mint: Mint, embedded_postgres: EmbeddedPostgres
) -> None:
    patient, kiosk_id, oxi = f"pref-{uuid.uuid4().hex}", str(uuid.uuid4()), device_id()
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=str(uuid.uuid4())))
    async with service_app(PACKAGE) as (_, client):
        grant = await client.put(
            f"/consents/{patient}", json={"granted": True}, headers=bearer(mint("nurse"))
        )
        assert grant.status_code == 200
        await enrol(client, kiosk, kiosk_id, oxi)
        embedded_postgres.stop()
        try:
            down = await client.post(
                "/measurements/batch", json={"items": [item(patient, oxi)]}, headers=kiosk
            )
            assert down.status_code == 503
            assert down.headers["retry-after"]
            assert (await client.get("/readyz")).status_code == 503
        finally:
            embedded_postgres.start()

        async def accepted() -> int | None:
            answer = await client.post(
                "/measurements/batch", json={"items": [item(patient, oxi)]}, headers=kiosk
            )
            return answer.json()["accepted"] if answer.status_code == 200 else None

        assert await eventually(accepted, "ingest never recovered") == 1


async def test_uploads_accepted_while_the_broker_is_away_are_stored_once_it_is_back(
    service_app: ServiceApp, mint: Mint, embedded_kafka: EmbeddedKafka
) -> None:
    patient, kiosk_id, oxi = f"pref-{uuid.uuid4().hex}", str(uuid.uuid4()), device_id()
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=str(uuid.uuid4())))
    responder = bearer(mint("responder"))
    async with service_app(PACKAGE) as (_, client):
        grant = await client.put(
            f"/consents/{patient}", json={"granted": True}, headers=bearer(mint("nurse"))
        )
        assert grant.status_code == 200
        await enrol(client, kiosk, kiosk_id, oxi)
        embedded_kafka.stop()
        try:
            items = [item(patient, oxi, value=v) for v in (96, 97, 98)]
            answer = await client.post("/measurements/batch", json={"items": items}, headers=kiosk)
            # The batch waits in the outbox: the kiosk is answered at once.
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 3
        finally:
            embedded_kafka.start()

        async def stored() -> int | None:
            history = await client.get(f"/patients/{patient}/measurements", headers=responder)
            count = len(history.json()["measurements"])
            return count if count >= 3 else None

        assert await eventually(stored, "the outbox never drained", seconds=120) == 3
