"""Fixtures for booking's integration tests: the running service fed with real directory
events through the real broker."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.fernet import Fernet
from fastapi import FastAPI
from google.protobuf.message import Message
from sqlalchemy import text

from maillage.common.v1 import types_pb2 as types
from maillage.directory.v1 import events_pb2 as directory
from maillage_common.auth.keys import DevSigningKey
from maillage_common.events import encode_headers
from maillage_common.events.catalogue import topic_of
from maillage_devstack.infra import run_psql
from maillage_devstack.pytest_plugin import TEST_ISSUER, Mint
from maillage_devstack.service_testing import running_service, service_settings

WAIT_SECONDS = 60.0


async def publish(bootstrap: str, *messages: tuple[Message, str]) -> None:
    """Send real CloudEvents records (binary mode), as another service's relay would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for message, subject in messages:
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


async def consume(bootstrap: str, topic: str, key: str, count: int) -> list[tuple[str, bytes]]:
    """(ce_type, payload) of the first `count` records with `key` on `topic` (shared topics:
    filter by the ids the test created)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"booking-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[tuple[str, bytes]] = []
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.key == key.encode():
                            headers = dict(record.headers)
                            found.append((headers["ce_type"].decode(), record.value or b""))
    finally:
        await consumer.stop()
    return found


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]]) -> None:
    """Poll until `check` holds (the effect of an event has no other signal to wait on)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not await check():
            await asyncio.sleep(0.1)


async def scalar(app: FastAPI, sql: str, **params: Any) -> Any:
    async with app.state.runtime.engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar()


def professional(
    pid: str,
    rpps: str,
    *,
    version: int = 1,
    departements: tuple[str, ...] = ("67",),
    specialty: str = "SM26",
    active: bool = True,
    locations: tuple[tuple[float, float], ...] = (),
) -> directory.ProfessionalChanged:
    return directory.ProfessionalChanged(
        change=directory.CHANGE_CREATED,
        version=version,
        professional=directory.Professional(
            id=pid,
            rpps=rpps,
            specialty_codes=[specialty],
            acts=[types.ACT_TELECONSULTATION, types.ACT_TELEEXPERTISE],
            departements=list(departements),
            active=active,
            practice_locations=[
                directory.PracticeLocation(
                    name=f"cabinet {n}",
                    location=types.GeoPoint(latitude=lat, longitude=lon),
                )
                for n, (lat, lon) in enumerate(locations)
            ],
        ),
    )


WEEKDAYS_ALL_DAY = {
    "time_zone": "Europe/Paris",
    "weekly": [{"weekday": d, "start": "00:00", "end": "23:30"} for d in range(7)],
    "slot_minutes": {"teleconsultation": 30, "teleexpertise": 30},
    "window_days": 30,
}


@dataclass
class World:
    """One site with a cabin and one responder, known to booking through directory events."""

    app: FastAPI
    client: httpx.AsyncClient
    mint: Mint
    bootstrap: str
    site_id: str
    kiosk_id: str
    responder_id: str
    rpps: str
    departement: str = "67"

    def nurse(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.mint('nurse', subject='nurse-1', site_id=self.site_id)}"
        }

    def responder(self, rpps: str | None = None) -> dict[str, str]:
        token = self.mint("responder", subject=f"dr-{rpps or self.rpps}", rpps=rpps or self.rpps)
        return {"Authorization": f"Bearer {token}"}

    def coordinator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint('coordinator', subject='coord')}"}

    all_day = WEEKDAYS_ALL_DAY

    async def set_schedule(self, **changes: Any) -> None:
        """The responder's own schedule: every weekday all day, with `changes` on top."""
        answer = await self.client.put(
            f"/responders/{self.responder_id}/schedule",
            json={**self.all_day, **changes},
            headers=self.responder(),
        )
        assert answer.status_code == 200, answer.text

    async def publish(self, *messages: tuple[Message, str]) -> None:
        await publish(self.bootstrap, *messages)

    async def scalar(self, sql: str, **params: Any) -> Any:
        return await scalar(self.app, sql, **params)

    async def consume(self, topic: str, key: str, count: int) -> list[tuple[str, bytes]]:
        return await consume(self.bootstrap, topic, key, count)

    async def eventually(self, check: Callable[[], Coroutine[Any, Any, bool]]) -> None:
        await eventually(check)

    @staticmethod
    def professional(pid: str, rpps: str, **kwargs: Any) -> directory.ProfessionalChanged:
        return professional(pid, rpps, **kwargs)

    async def add_responder(self, pid: str, rpps: str, **kwargs: Any) -> None:
        await publish(self.bootstrap, (professional(pid, rpps, **kwargs), pid))
        await eventually(
            lambda: _exists(self.app, "SELECT count(*) FROM responders WHERE id = :i", pid)
        )


async def _exists(app: FastAPI, sql: str, ident: str) -> bool:
    return bool(await scalar(app, sql, i=ident))


async def _seed(app: FastAPI, client: httpx.AsyncClient, mint: Mint, bootstrap: str) -> World:
    tag = uuid.uuid4().hex[:8]
    world = World(
        app=app,
        client=client,
        mint=mint,
        bootstrap=bootstrap,
        site_id=f"site-{tag}",
        kiosk_id=f"cabin-{tag}",
        responder_id=f"pro-{tag}",
        rpps=f"1{uuid.uuid4().int % 10**10:010d}",
    )
    site = directory.SiteChanged(
        version=1,
        site=directory.Site(id=world.site_id, name="MSP", departement="67", active=True),
    )
    kiosk = directory.KioskChanged(
        version=1,
        kiosk=directory.Kiosk(id=world.kiosk_id, site_id=world.site_id, active=True),
    )
    await publish(bootstrap, (site, world.site_id), (kiosk, world.kiosk_id))
    await world.add_responder(world.responder_id, world.rpps)
    await eventually(
        lambda: _exists(app, "SELECT count(*) FROM kiosks WHERE id = :i", world.kiosk_id)
    )
    await eventually(
        lambda: _exists(app, "SELECT count(*) FROM sites WHERE id = :i", world.site_id)
    )
    return world


@asynccontextmanager
async def _shared_service(
    database_url: str, bootstrap: str, signing_key: DevSigningKey, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """One running booking service shared by many tests (each test seeds its own ids):
    starting a service and joining consumer groups costs seconds, so tests share it."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    run_psql(database_url, f'CREATE SCHEMA "{schema}";')
    blobs = tempfile.TemporaryDirectory(prefix=f"booking-blobs-{schema}-")
    settings = service_settings(
        "maillage_booking",
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        schema=schema,
        signing_key=signing_key,
        issuer=TEST_ISSUER,
        patient_key=Fernet.generate_key().decode(),
        database_pool_size=20,
        # A pool wait under a 100-client burst on 2 busy cores can exceed the 2 s default.
        database_connect_timeout_seconds=30,
        attachment_directory=blobs.name,
        **overrides,
    )
    try:
        async with running_service("maillage_booking", settings) as running:
            yield running
    finally:
        run_psql(database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE;')
        blobs.cleanup()


@pytest.fixture(scope="session")
async def shared_booking(
    database_url: str, kafka_bootstrap_servers: str, dev_signing_key: DevSigningKey
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with _shared_service(database_url, kafka_bootstrap_servers, dev_signing_key) as running:
        yield running


@pytest.fixture(scope="session")
async def fast_booking(
    database_url: str, kafka_bootstrap_servers: str, dev_signing_key: DevSigningKey
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Short timers: holds lapse at once, on-demand requests widen and expire in seconds."""
    async with _shared_service(
        database_url,
        kafka_bootstrap_servers,
        dev_signing_key,
        hold_ttl_seconds=0,
        sweep_interval_seconds=0.2,
        ondemand_widen_after_seconds=1.0,
        ondemand_expire_after_seconds=3.0,
    ) as running:
        yield running


@pytest.fixture
async def world(
    shared_booking: tuple[FastAPI, httpx.AsyncClient], mint: Mint, kafka_bootstrap_servers: str
) -> World:
    """A fresh site, cabin and responder in the shared service."""
    return await _seed(*shared_booking, mint, kafka_bootstrap_servers)


@pytest.fixture
async def fast_world(
    fast_booking: tuple[FastAPI, httpx.AsyncClient], mint: Mint, kafka_bootstrap_servers: str
) -> World:
    return await _seed(*fast_booking, mint, kafka_bootstrap_servers)
