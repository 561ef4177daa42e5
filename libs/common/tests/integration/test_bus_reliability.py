"""The reliable bus against the real broker and PostgreSQL (foundation tests 1 to 4)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from maillage.booking.v1 import events_pb2
from maillage_common.bus import EventConsumer, InvalidEventError, dead_letter_topic
from maillage_common.db import UnitOfWork
from maillage_common.events import Event, encode_headers
from maillage_common.runtime import run_runtime
from maillage_common.settings import ServiceSettings
from maillage_devstack.infra import EmbeddedKafka

from .bus_harness import applying_consumer, appointment_booked, record_appointments
from .conftest import scalar, wait_until

pytestmark = pytest.mark.integration
TOPIC = "booking.appointments"


async def applied_in_order(engine: AsyncEngine, subjects: set[str]) -> dict[str, list[str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT subject, event_id FROM applied_effect ORDER BY position")
        )
        by_subject: dict[str, list[str]] = defaultdict(list)
        for subject, event_id in rows:
            if subject in subjects:
                by_subject[subject].append(str(event_id))
        return by_subject


async def test_events_recorded_while_broker_is_down_are_all_delivered_in_key_order_once(
    bus_settings: ServiceSettings, engine: AsyncEngine, embedded_kafka: EmbeddedKafka, group: str
) -> None:
    subjects = [f"appt-{key}-{uuid.uuid4().hex[:6]}" for key in range(10)]
    sequence = [subjects[i % 10] for i in range(100)]
    embedded_kafka.stop()
    try:
        async with run_runtime(
            bus_settings, published=[type(appointment_booked("x"))], consumers=[]
        ) as producer_side:
            recorded = await record_appointments(bus_settings, sequence, producer_side.sessions)
            await asyncio.sleep(1.0)  # the relay is retrying against a dead broker
            assert await scalar(engine, "SELECT count(*) FROM outbox_event") == 100
            embedded_kafka.start()
            consumer = applying_consumer(group)
            async with run_runtime(bus_settings, published=[], consumers=[consumer]):
                await wait_until(
                    lambda: _count_applied(engine, set(subjects), expected=100), timeout=90
                )
    finally:
        if not embedded_kafka.running:
            embedded_kafka.start()

    expected: dict[str, list[str]] = defaultdict(list)
    for subject, event_id in zip(sequence, recorded, strict=True):
        expected[subject].append(str(event_id))
    assert await applied_in_order(engine, set(subjects)) == expected
    assert await scalar(engine, "SELECT count(*) FROM outbox_event") == 0


async def _count_applied(engine: AsyncEngine, subjects: set[str], *, expected: int) -> bool:
    applied = await applied_in_order(engine, subjects)
    return sum(len(ids) for ids in applied.values()) >= expected


async def test_the_same_event_delivered_twice_has_one_effect(
    bus_settings: ServiceSettings, engine: AsyncEngine, kafka_bootstrap_servers: str, group: str
) -> None:
    subject = f"appt-dup-{uuid.uuid4().hex[:8]}"
    sentinel = f"appt-after-{uuid.uuid4().hex[:8]}"
    consumer = applying_consumer(group)
    async with run_runtime(bus_settings, published=[], consumers=[consumer]) as runtime:
        await wait_until(lambda: _ready(runtime))
        event_id = uuid.uuid4()
        async with _raw_producer(kafka_bootstrap_servers) as producer:
            for same_subject in (subject, subject, sentinel):
                identity = event_id if same_subject == subject else uuid.uuid4()
                await _send_event(producer, same_subject, identity)
        await wait_until(lambda: _count_applied(engine, {sentinel}, expected=1))
    applied = await applied_in_order(engine, {subject})
    assert applied == {subject: [str(event_id)]}


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_partition_keeps_flowing(
    bus_settings: ServiceSettings, engine: AsyncEngine, kafka_bootstrap_servers: str, group: str
) -> None:
    subject = f"appt-poison-{uuid.uuid4().hex[:8]}"
    consumer = applying_consumer(group)
    async with run_runtime(bus_settings, published=[], consumers=[consumer]) as runtime:
        await wait_until(lambda: _ready(runtime))
        async with _raw_producer(kafka_bootstrap_servers) as producer:
            # Same key, so the poison and the good events share one partition.
            poison_id = uuid.uuid4()
            await _send_event(producer, subject, poison_id, payload=b"\x0a\x10short")
            await producer.send_and_wait(
                TOPIC, key=subject.encode(), value=b"x", headers=[("ce_type", b"nonsense")]
            )
            good_ids = [uuid.uuid4() for _ in range(3)]
            for good_id in good_ids:
                await _send_event(producer, subject, good_id)
        await wait_until(lambda: _count_applied(engine, {subject}, expected=3))
        dead = await _dead_letters(kafka_bootstrap_servers, subject, expected=2)
    assert await applied_in_order(engine, {subject}) == {subject: [str(i) for i in good_ids]}
    assert dead[0]["ce_id"] == str(poison_id)
    assert dead[0]["dlq_consumer"] == group
    assert dead[0]["dlq_error_type"] == "UndecodableEventError"
    assert "not a valid" in dead[0]["dlq_error_message"]
    assert dead[1]["dlq_error_type"] == "UndecodableEventError"


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_its_attempts(
    bus_settings: ServiceSettings, engine: AsyncEngine, kafka_bootstrap_servers: str, group: str
) -> None:
    subject = f"appt-fail-{uuid.uuid4().hex[:8]}"
    attempts: list[str] = []

    async def always_fails(event: Event[Any], uow: UnitOfWork) -> None:
        # Earlier tests' events share the topic: only this test's event is broken.
        if event.subject == subject:
            attempts.append(subject)
            raise ValueError("this appointment cannot be applied")

    consumer = EventConsumer(group, handlers={events_pb2.AppointmentBooked: always_fails})
    async with run_runtime(bus_settings, published=[], consumers=[consumer]) as runtime:
        await wait_until(lambda: _ready(runtime))
        dead_id = uuid.uuid4()
        async with _raw_producer(kafka_bootstrap_servers) as producer:
            await _send_event(producer, subject, dead_id)
        dead = await _dead_letters(kafka_bootstrap_servers, subject, expected=1)
    assert dead[0]["dlq_error_type"] == "ValueError"
    assert dead[0]["dlq_attempts"] == str(bus_settings.consumer_max_attempts)
    assert len(attempts) >= bus_settings.consumer_max_attempts
    # Remembered as handled, so a redelivered batch does not dead-letter it twice.
    remembered = "SELECT count(*) FROM inbox_event WHERE event_id = :id"
    assert await scalar(engine, remembered, id=dead_id) == 1


async def test_a_consumer_killed_mid_batch_applies_every_effect_exactly_once(
    bus_settings: ServiceSettings, engine: AsyncEngine, group: str
) -> None:
    subjects = [f"appt-kill-{i}-{uuid.uuid4().hex[:6]}" for i in range(200)]
    async with run_runtime(
        bus_settings, published=[type(appointment_booked("x"))], consumers=[]
    ) as producer_side:
        await record_appointments(bus_settings, subjects, producer_side.sessions)
        await wait_until(lambda: _outbox_empty(engine), timeout=60)
    first = _spawn_consumer(bus_settings, group)
    try:
        await wait_until(lambda: _count_applied(engine, set(subjects), expected=40), timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = sum(
            len(ids) for ids in (await applied_in_order(engine, set(subjects))).values()
        )
        assert killed_at < len(subjects), "the consumer must be killed mid-way for this test"
        second = _spawn_consumer(bus_settings, group)
        try:
            await wait_until(
                lambda: _count_applied(engine, set(subjects), expected=200), timeout=120
            )
            await asyncio.sleep(1.0)  # let any duplicate application show up
        finally:
            second.terminate()
            second.wait(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    applied = await applied_in_order(engine, set(subjects))
    assert sorted(applied) == sorted(subjects)
    assert all(len(ids) == 1 for ids in applied.values()), "an effect was applied twice"


def _spawn_consumer(settings: ServiceSettings, group: str) -> subprocess.Popen[bytes]:
    harness = Path(__file__).with_name("bus_harness.py")
    return subprocess.Popen(
        [
            sys.executable,
            str(harness),
            "--database-url",
            settings.database_url,
            "--bootstrap",
            settings.kafka_bootstrap_servers,
            "--schema",
            settings.owned_schema,
            "--group",
            group,
            "--delay",
            "0.02",
        ],
        env={**os.environ, "PYTHONPATH": str(harness.parent)},
    )


async def _outbox_empty(engine: AsyncEngine) -> bool:
    return await scalar(engine, "SELECT count(*) FROM outbox_event") == 0


async def _ready(runtime: object) -> bool:
    return bool(getattr(runtime, "bus_ready", False))


class _raw_producer:  # noqa: N801 - reads as a context manager
    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> AIOKafkaProducer:
        await self._producer.start()
        return self._producer

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()


async def _send_event(
    producer: AIOKafkaProducer, subject: str, event_id: uuid.UUID, *, payload: bytes | None = None
) -> None:
    message = appointment_booked(subject)
    headers = encode_headers(
        event_id=event_id,
        event_type=message.DESCRIPTOR.full_name,
        source="maillage/test",
        subject=subject,
        time=datetime.now(UTC),
        traceparent=None,
    )
    value = message.SerializeToString() if payload is None else payload
    await producer.send_and_wait(TOPIC, key=subject.encode(), value=value, headers=headers)


async def _dead_letters(bootstrap: str, subject: str, *, expected: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        dead_letter_topic(TOPIC),
        bootstrap_servers=bootstrap,
        group_id=f"dlq-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        if record.key == subject.encode():
                            found.append({k: v.decode() for k, v in record.headers})
    finally:
        await consumer.stop()
    return found


async def test_an_event_declared_invalid_is_dead_lettered_without_retries(
    bus_settings: ServiceSettings, kafka_bootstrap_servers: str, group: str
) -> None:
    subject = f"appt-invalid-{uuid.uuid4().hex[:8]}"
    attempts: list[str] = []

    async def refuses(event: Event[Any], uow: UnitOfWork) -> None:
        if event.subject == subject:
            attempts.append(subject)
            raise InvalidEventError("this appointment has no time range")

    consumer = EventConsumer(group, handlers={events_pb2.AppointmentBooked: refuses})
    async with run_runtime(bus_settings, published=[], consumers=[consumer]) as runtime:
        await wait_until(lambda: _ready(runtime))
        async with _raw_producer(kafka_bootstrap_servers) as producer:
            await _send_event(producer, subject, uuid.uuid4())
        dead = await _dead_letters(kafka_bootstrap_servers, subject, expected=1)
    assert dead[0]["dlq_error_type"] == "InvalidEventError"
    assert dead[0]["dlq_attempts"] == "1"
    # Once in the batch, once alone: never the retry sequence.
    assert len(attempts) <= 2
