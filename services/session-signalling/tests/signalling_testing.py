"""Fixtures: the real service on a real port (WebSockets need one), and event readers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from maillage_common.events.catalogue import EventCatalogue
from maillage_devstack.pytest_plugin import Mint, ServiceApp

PACKAGE = "maillage_session_signalling"


@dataclass
class LiveService:
    app: FastAPI
    client: httpx.AsyncClient
    ws_base: str
    mint: Mint

    def auth(self, role: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(role, **claims)}"}

    async def create_session(
        self, *, site_id: str, responder: str, start: datetime | None = None, minutes: int = 30
    ) -> dict[str, Any]:
        start = start or datetime.now(UTC)
        response = await self.client.post(
            "/v1/sessions",
            json={
                "site_id": site_id,
                "responder_id": responder,
                "scheduled_start": start.isoformat(),
                "scheduled_end": (start + timedelta(minutes=minutes)).isoformat(),
            },
            headers=self.auth("coordinator", subject="coord-1"),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def join_token(self, session_id: str, role: str, **claims: Any) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/sessions/{session_id}/join-token", headers=self.auth(role, **claims)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def ws_url(self, grant: dict[str, Any]) -> str:
        return f"{self.ws_base}{grant['websocket_path']}"


LiveServiceFactory = Callable[..., contextlib.AbstractAsyncContextManager[LiveService]]


@contextlib.asynccontextmanager
async def serve_on_free_port(app: FastAPI) -> AsyncIterator[str]:
    """uvicorn on 127.0.0.1:<free port> in this loop; the app's lifespan already runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def live_service(service_app: ServiceApp, mint: Mint) -> LiveServiceFactory:
    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[LiveService]:
        async with (
            service_app(PACKAGE, **overrides) as (app, client),
            serve_on_free_port(app) as ws_base,
        ):
            yield LiveService(app, client, ws_base, mint)

    return start


async def session_events(
    bootstrap: str, session_id: str, wanted: set[str], topic: str = "sessions.lifecycle"
) -> dict[str, list[Any]]:
    """Events of one session by short type name, read until every `wanted` type arrived."""
    catalogue = EventCatalogue.load()
    # No consumer group: assigning the partitions directly skips the group join.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[str, list[Any]] = {}
    try:
        await consumer.topics()  # refreshes the metadata partitions_for_topic reads
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        async with asyncio.timeout(60):
            while not wanted <= set(found):
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        if record.key != session_id.encode():
                            continue
                        headers = dict(record.headers)
                        ce_type = headers["ce_type"].decode()
                        message = catalogue.message_type(ce_type).FromString(record.value)
                        found.setdefault(ce_type.rsplit(".", 1)[-1], []).append(message)
    finally:
        await consumer.stop()
    return found
