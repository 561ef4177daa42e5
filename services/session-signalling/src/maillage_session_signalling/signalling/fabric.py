"""Cross-replica relay through PostgreSQL LISTEN/NOTIFY.

Every replica LISTENs on one channel per schema and NOTIFYs frames whose target is not
connected locally (or that are broadcast to a room); each replica delivers what concerns
its own connections. Why PostgreSQL rather than Kafka: signalling frames are ephemeral
(a lost offer is retried by the peer, nothing replays them), latency matters more than
durability, and every replica already holds a PostgreSQL connection; a Kafka consumer per
replica would need its own group (no load sharing wanted: every replica must see every
frame), adds rebalance pauses of seconds on scale events, and keeps 30 days of SDPs.
NOTIFY payloads are limited to 8000 bytes: larger frames (chat attachments) stay on the
replica they were sent to and the sender is told (`too_large_for_relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

_log = structlog.get_logger(__name__)

MAX_NOTIFY_BYTES = 7900
FrameHandler = Callable[[str, str, str | None, dict[str, Any]], None]
"""(room_id, to or "*", excluded participant, frame) from another replica."""


class PostgresFabric:
    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self.replica = uuid.uuid4().hex[:12]
        self._handler: FrameHandler | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(10_000)
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncio.Task[None] | None = None

    def on_frame(self, handler: FrameHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(self._channel, self._received)
        self._sender = asyncio.create_task(self._send_loop(), name="fabric-sender")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    def send(self, room_id: str, to: str, frame: dict[str, Any], exclude: str | None) -> bool:
        """Queue a frame for the other replicas; False when it cannot cross."""
        payload = json.dumps(
            {"o": self.replica, "r": room_id, "t": to, "x": exclude, "f": frame},
            separators=(",", ":"),
        )
        if len(payload.encode()) > MAX_NOTIFY_BYTES:
            return False
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            _log.warning("fabric_backlog_full")
            return False
        return True

    async def _send_loop(self) -> None:
        connection: asyncpg.Connection | None = None
        while True:
            payload = await self._outbox.get()
            try:
                if connection is None or connection.is_closed():
                    connection = await asyncpg.connect(self._dsn)
                await connection.execute("SELECT pg_notify($1, $2)", self._channel, payload)
            except (OSError, asyncpg.PostgresError) as error:
                # Ephemeral by design: a lost frame is renegotiated by the peers.
                _log.warning("fabric_send_failed", error=repr(error))
                connection = None

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        message = json.loads(payload)
        if message["o"] == self.replica or self._handler is None:
            return
        self._handler(message["r"], message["t"], message["x"], message["f"])
