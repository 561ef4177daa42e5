"""`maillage bench bus`: the reliable bus every service rests on, beside raw clients.

- record: events recorded through UnitOfWork (one transaction each) vs raw asyncpg inserts
  of the same rows;
- relay: outbox drained to Kafka vs raw aiokafka produce of the same records;
- consume: EventConsumer (inbox + effect, one transaction and one offset commit per batch)
  vs the same work done with raw aiokafka and asyncpg;
- latency: record → applied, p50/p99 at a steady trickle, vs raw produce → consume.

Knobs: BENCH_BUS_EVENTS (default 5000), BENCH_BUS_CONCURRENCY (default 8).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from maillage.booking.v1 import events_pb2
from maillage_common.bus import EventConsumer, TopicSpec, ensure_topics
from maillage_common.db import UnitOfWork, create_messaging_tables, create_session_factory
from maillage_common.events import Event
from maillage_common.runtime import run_runtime
from maillage_common.settings import ServiceSettings
from maillage_devstack.bench import Figure, Results, benchmark
from maillage_devstack.infra import Infrastructure, provide_infrastructure

TOPIC = "booking.appointments"
RAW_TOPIC = "bench.raw"


@benchmark("bus")
def run() -> int:
    """Outbox relay and idempotent consumer vs raw aiokafka / asyncpg."""
    events = int(os.environ.get("BENCH_BUS_EVENTS", "5000"))
    concurrency = int(os.environ.get("BENCH_BUS_CONCURRENCY", "8"))
    with (
        tempfile.TemporaryDirectory(prefix="maillage-bench-") as root,
        provide_infrastructure(Path(root), durable=False) as infra,
    ):
        results = asyncio.run(_measure(infra, events, concurrency))
    print(results.table())
    print(f"written to {results.write()}")
    return 0


async def _measure(infra: Infrastructure, events: int, concurrency: int) -> Results:
    results = Results("bus", parameters={"events": events, "concurrency": concurrency})
    database_url = infra.ensure_database("maillage_bench")
    settings = _settings(database_url, infra.kafka_bootstrap_servers)
    await _prepare(settings)
    await ensure_topics(
        infra.kafka_bootstrap_servers, [TopicSpec(RAW_TOPIC, 6), TopicSpec(TOPIC, 6)]
    )

    raw_insert = await _raw_insert_rate(database_url, settings.owned_schema, events, concurrency)
    record = await _record_rate(settings, events, concurrency)
    results.add(
        Figure("record (UnitOfWork + outbox)", record, "events/s", "raw asyncpg insert", raw_insert)
    )

    raw_produce = await _raw_produce_rate(infra.kafka_bootstrap_servers, events)
    drain = await _relay_drain_rate(settings, events)
    results.add(
        Figure("relay drain outbox → Kafka", drain, "events/s", "raw aiokafka produce", raw_produce)
    )

    raw_consume = await _raw_consume_rate(settings, events)
    apply = await _consume_rate(settings, events)
    results.add(
        Figure(
            "consume (inbox + effect)",
            apply,
            "events/s",
            "raw aiokafka + asyncpg, same work",
            raw_consume,
        )
    )

    raw_p50, raw_p99 = await _raw_latency(infra.kafka_bootstrap_servers)
    p50, p99 = await _end_to_end_latency(settings)
    results.add(Figure("record → applied p50", p50, "ms", "raw produce → consume p50", raw_p50))
    results.add(Figure("record → applied p99", p99, "ms", "raw produce → consume p99", raw_p99))
    return results


def _settings(database_url: str, bootstrap: str) -> ServiceSettings:
    return ServiceSettings(
        SERVICE_NAME="bench-bus",
        DATABASE_URL=database_url,
        database_schema=f"bench_{uuid.uuid4().hex[:8]}",
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        AUTH_JWKS_URL="file:///dev/null",
        AUTH_ISSUER="bench",
        LOG_LEVEL="WARNING",
        outbox_batch_size=500,
        outbox_poll_interval_seconds=0.05,
    )


async def _prepare(settings: ServiceSettings) -> None:
    engine = create_async_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{settings.owned_schema}"'))
        await connection.execute(text(f'SET search_path TO "{settings.owned_schema}"'))
        await connection.run_sync(create_messaging_tables)
        for table in ("applied", "raw_applied"):
            await connection.execute(
                text(f"CREATE TABLE {table} (event_id uuid PRIMARY KEY, applied_at timestamptz)")
            )
        await connection.execute(
            text("CREATE TABLE raw_outbox (id bigserial PRIMARY KEY, event_id uuid, payload bytea)")
        )
    await engine.dispose()


def _message(subject: str) -> events_pb2.AppointmentBooked:
    message = events_pb2.AppointmentBooked(
        appointment_id=subject, site_id="site-bench", responder_id="responder-bench"
    )
    message.specialty_code = "SM26"
    return message


async def _in_parallel(
    total: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> float:
    """Run `one(i)` for i < total over `concurrency` workers; return operations per second."""
    counter = iter(range(total))

    async def worker() -> None:
        for index in counter:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def _raw_insert_rate(database_url: str, schema: str, total: int, concurrency: int) -> float:
    pool = await asyncpg.create_pool(
        database_url.replace("+asyncpg", ""),
        min_size=concurrency,
        max_size=concurrency,
        server_settings={"search_path": schema},
    )
    payload = _message("raw").SerializeToString()

    async def insert(_: int) -> None:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO raw_outbox (event_id, payload) VALUES ($1, $2)", uuid.uuid4(), payload
            )

    try:
        return await _in_parallel(total, concurrency, insert)
    finally:
        await pool.close()


async def _record_rate(settings: ServiceSettings, total: int, concurrency: int) -> float:
    engine = create_async_engine(
        settings.database_url,
        pool_size=concurrency,
        connect_args={"server_settings": {"search_path": settings.owned_schema}},
    )
    sessions = create_session_factory(engine)

    async def record(index: int) -> None:
        async with UnitOfWork(sessions) as uow:
            await uow.record(_message(f"appt-{index}"), subject=f"appt-{index % 97}")
            await uow.commit()

    try:
        return await _in_parallel(total, concurrency, record)
    finally:
        await engine.dispose()


async def _raw_produce_rate(bootstrap: str, total: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    payload = _message("raw").SerializeToString()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(RAW_TOPIC, value=payload, key=f"appt-{i % 97}".encode())
            for i in range(total)
        ]
        await asyncio.gather(*futures)
        return total / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _outbox_size(settings: ServiceSettings) -> int:
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        return int(
            await connection.fetchval(
                f'SELECT count(*) FROM "{settings.owned_schema}".outbox_event'
            )
        )
    finally:
        await connection.close()


async def _relay_drain_rate(settings: ServiceSettings, total: int) -> float:
    """The outbox already holds `total` events from the record step: time how fast it drains."""
    started = time.perf_counter()
    async with run_runtime(settings, published=[events_pb2.AppointmentBooked], consumers=[]):
        while await _outbox_size(settings) > 0:
            await asyncio.sleep(0.02)
    return total / (time.perf_counter() - started)


async def _raw_consume_rate(settings: ServiceSettings, total: int) -> float:
    """The same work with raw clients: per fetched batch, one asyncpg transaction that
    inserts the inbox and effect rows, then one offset commit."""
    consumer = AIOKafkaConsumer(
        RAW_TOPIC,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=100,
    )
    connection = await asyncpg.connect(
        settings.database_url.replace("+asyncpg", ""),
        server_settings={"search_path": settings.owned_schema},
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100)
            ids = [(uuid.uuid4(),) for records in batches.values() for _ in records]
            async with connection.transaction():
                await connection.executemany(
                    "INSERT INTO inbox_event (consumer, event_id, event_type)"
                    " VALUES ('raw', $1, 'raw') ON CONFLICT DO NOTHING",
                    ids,
                )
                await connection.executemany(
                    "INSERT INTO raw_applied (event_id, applied_at) VALUES ($1, now())", ids
                )
            await consumer.commit()
            seen += len(ids)
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await connection.close()


def _applying_consumer(group: str, applied: asyncio.Queue[str] | None = None) -> EventConsumer:
    async def apply(event: Event[Any], uow: UnitOfWork) -> None:
        await uow.session.execute(
            text(
                "INSERT INTO applied (event_id, applied_at) VALUES (:id, now())"
                " ON CONFLICT DO NOTHING"
            ),
            {"id": event.id},
        )
        if applied is not None:
            applied.put_nowait(event.subject)

    return EventConsumer(group, handlers={events_pb2.AppointmentBooked: apply})


async def _applied_count(settings: ServiceSettings) -> int:
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        return int(
            await connection.fetchval(f'SELECT count(*) FROM "{settings.owned_schema}".applied')
        )
    finally:
        await connection.close()


async def _consume_rate(settings: ServiceSettings, total: int) -> float:
    consumer = _applying_consumer(f"bench-{uuid.uuid4().hex[:6]}")
    async with run_runtime(settings, published=[], consumers=[consumer]) as runtime:
        while not runtime.consumers_started:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while await _applied_count(settings) < total:
            await asyncio.sleep(0.05)
        return total / (time.perf_counter() - started)


async def _raw_latency(bootstrap: str, samples: int = 200) -> tuple[float, float]:
    topic = f"bench.latency.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, 1)])
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    try:
        for _ in range(samples):
            sent = time.perf_counter()
            await producer.send_and_wait(topic, value=b"x")
            await consumer.getone()
            latencies.append((time.perf_counter() - sent) * 1000)
    finally:
        await producer.stop()
        await consumer.stop()
    return _percentiles(latencies)


async def _end_to_end_latency(settings: ServiceSettings, samples: int = 200) -> tuple[float, float]:
    """Record one event at a time and time until the consumer has applied it."""
    applied: asyncio.Queue[str] = asyncio.Queue()
    consumer = _applying_consumer(f"latency-{uuid.uuid4().hex[:6]}", applied)
    published = [events_pb2.AppointmentBooked]
    async with run_runtime(settings, published=published, consumers=[consumer]) as runtime:
        while not runtime.consumers_started:
            await asyncio.sleep(0.01)
        await _replayed(applied)
        latencies: list[float] = []
        for _ in range(samples):
            subject = f"latency-{uuid.uuid4().hex}"
            recorded = time.perf_counter()
            async with runtime.unit_of_work() as uow:
                await uow.record(_message(subject), subject=subject)
                await uow.commit()
            await asyncio.wait_for(_until(applied, subject), timeout=30)
            latencies.append((time.perf_counter() - recorded) * 1000)
    return _percentiles(latencies)


async def _replayed(applied: asyncio.Queue[str]) -> None:
    """A new group first replays the earlier steps' events: wait until it is quiet."""
    while True:
        try:
            await asyncio.wait_for(applied.get(), timeout=2.0)
        except TimeoutError:
            return


async def _until(applied: asyncio.Queue[str], subject: str) -> None:
    # The new group first replays the earlier steps' events: skip them.
    while await applied.get() != subject:
        pass


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


if __name__ == "__main__":
    sys.exit(run())
