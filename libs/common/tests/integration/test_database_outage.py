"""PostgreSQL stopped under a running service: 503 not 500, no dead letters, self-recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from maillage_common.auth import public
from maillage_common.bus import dead_letter_topic
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.runtime import run_runtime
from maillage_common.service import create_service_app
from maillage_common.settings import ServiceSettings
from maillage_devstack.infra import EmbeddedPostgres

from .bus_harness import applying_consumer
from .conftest import scalar, wait_until
from .test_bus_reliability import TOPIC, _raw_producer, _send_event

pytestmark = pytest.mark.integration
# A request or probe that takes longer than this during an outage counts as a hang.
HANG_SECONDS = 10.0


@pytest.fixture
async def postgres_back(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[EmbeddedPostgres]:
    yield embedded_postgres
    if not embedded_postgres.running:
        embedded_postgres.start()


async def test_consumer_waits_out_a_database_outage_without_dead_lettering(
    bus_settings: ServiceSettings,
    engine: AsyncEngine,
    kafka_bootstrap_servers: str,
    postgres_back: EmbeddedPostgres,
    group: str,
) -> None:
    subject = f"appt-outage-{uuid.uuid4().hex[:8]}"
    async with run_runtime(bus_settings, published=[], consumers=[applying_consumer(group)]) as rt:
        await wait_until(lambda: _flag(rt.bus_ready))
        await asyncio.to_thread(postgres_back.stop)
        async with _raw_producer(kafka_bootstrap_servers) as producer:
            await _send_event(producer, subject, uuid.uuid4())
        await asyncio.sleep(3.0)  # the consumer meets the outage and keeps redelivering
        await asyncio.to_thread(postgres_back.start)
        await wait_until(lambda: _applied(engine, subject), timeout=90)
    assert await _applied(engine, subject)
    assert await _dead_lettered(kafka_bootstrap_servers, subject) == 0


async def test_api_answers_503_and_readyz_fails_while_the_database_is_away(
    bus_settings: ServiceSettings, postgres_back: EmbeddedPostgres
) -> None:
    router = APIRouter(dependencies=[public()])

    @router.get("/count")
    async def count(uow: UnitOfWorkDep) -> dict[str, int]:
        async with uow:
            total = (await uow.session.execute(text("SELECT count(*) FROM outbox_event"))).scalar()
        return {"count": int(total or 0)}

    app = create_service_app(bus_settings, title="outage", description="", routers=[router])
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as c,
    ):
        assert (await c.get("/count")).status_code == 200
        await asyncio.to_thread(postgres_back.stop)
        async with asyncio.timeout(HANG_SECONDS):
            during = await c.get("/count")
            probe = await c.get("/readyz")
        assert during.status_code == 503
        assert during.headers["content-type"] == "application/problem+json"
        assert probe.status_code == 503
        assert probe.json()["checks"]["database"] is False
        await asyncio.to_thread(postgres_back.start)
        await wait_until(lambda: _status_is(c, "/count", 200), timeout=60)
        assert (await c.get("/readyz")).json()["checks"]["database"] is True


async def _flag(value: bool) -> bool:
    return value


async def _applied(engine: AsyncEngine, subject: str) -> bool:
    try:
        found = await scalar(
            engine, "SELECT count(*) FROM applied_effect WHERE subject = :s", s=subject
        )
    except Exception:
        return False
    assert found <= 1, "applied twice"
    return found == 1


async def _status_is(client: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status


async def _dead_lettered(bootstrap: str, subject: str) -> int:
    consumer = AIOKafkaConsumer(
        dead_letter_topic(TOPIC),
        bootstrap_servers=bootstrap,
        group_id=f"dlq-check-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found = 0
    try:
        # Read the whole dead-letter topic: other tests' records come first.
        while batches := await consumer.getmany(timeout_ms=2000):
            found += sum(
                1 for records in batches.values() for r in records if r.key == subject.encode()
            )
        return found
    finally:
        await consumer.stop()
