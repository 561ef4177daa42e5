"""Helpers for the integration tests: payload builders, Kafka publishing and reading."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf.message import Message

from maillage.directory.v1 import events_pb2 as directory_pb2
from maillage_common.events import encode_headers
from maillage_common.events.catalogue import topic_of

WAIT_SECONDS = 60.0


def iso(at: datetime) -> str:
    return at.isoformat()


def device_id(kind: str = "oxi") -> str:
    """A fresh device id: a device is active on one kiosk at a time, across tests too."""
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def item(patient_ref: str, device: str, **overrides: Any) -> dict[str, Any]:
    """A valid SpO2 item from `device` (enrol it on the uploading kiosk first)."""
    # A random offset: two items built in a row must not share (device, code, instant).
    offset = timedelta(seconds=30, microseconds=random.randrange(1_000_000))
    body: dict[str, Any] = {
        "measurement_id": str(uuid.uuid4()),
        "device_id": device,
        "device_kind": "oximeter",
        "patient_ref": patient_ref,
        "loinc_code": "59408-5",
        "ucum_unit": "%",
        "value": 97,
        "measured_at": iso(datetime.now(UTC) - offset),
    }
    body.update(overrides)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def enrol(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    kiosk_id: str,
    device: str,
    kind: str = "oximeter",
) -> dict[str, Any]:
    """Enrol a device on the kiosk (as `headers`: the kiosk itself, a coordinator…);
    returns the answer, credential included."""
    answer = await client.post(
        f"/kiosks/{kiosk_id}/devices", json={"device_id": device, "kind": kind}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    enrolled: dict[str, Any] = answer.json()
    return enrolled


async def publish(bootstrap: str, message: Message, subject: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        headers = encode_headers(
            event_id=uuid.uuid4(),
            event_type=message.DESCRIPTOR.full_name,
            source="maillage/test",
            subject=subject,
            time=datetime.now(UTC),
            traceparent=None,
        )
        await producer.send_and_wait(
            topic_of(type(message)),
            key=subject.encode(),
            value=message.SerializeToString(),
            headers=headers,
        )
    finally:
        await producer.stop()


def site_changed(site_id: str, departement: str, version: int) -> directory_pb2.SiteChanged:
    return directory_pb2.SiteChanged(
        change=directory_pb2.CHANGE_UPDATED,
        version=version,
        site=directory_pb2.Site(
            id=site_id,
            name="EHPAD test",
            category=directory_pb2.SITE_CATEGORY_EHPAD,
            departement=departement,
            active=True,
        ),
    )


def kiosk_changed(
    kiosk_id: str, site_id: str, version: int, *, revoked: bool = False
) -> directory_pb2.KioskChanged:
    return directory_pb2.KioskChanged(
        change=directory_pb2.CHANGE_UPDATED,
        version=version,
        kiosk=directory_pb2.Kiosk(
            id=kiosk_id, site_id=site_id, active=True, credential_revoked=revoked
        ),
    )


async def read_events(
    bootstrap: str,
    topic: str,
    keep: Callable[[str, bytes], bool],
    *,
    until: Callable[[list[tuple[str, bytes]]], bool],
) -> list[tuple[str, bytes]]:
    """(ce_type, value) of records on `topic` that `keep` selects, read from the start
    until `until` holds for them."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"telemetry-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[tuple[str, bytes]] = []
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not until(found):
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        headers = {k: v.decode() for k, v in record.headers}
                        if keep(headers.get("ce_type", ""), record.value or b""):
                            found.append((headers["ce_type"], record.value or b""))
    finally:
        await consumer.stop()
    return found
