"""Cross-replica relay through PostgreSQL LISTEN/NOTIFY.

Every replica LISTENs on one channel per schema and NOTIFYs frames whose target is not
connected locally (or that are broadcast to a room); each replica delivers what concerns
its own connections. Why PostgreSQL rather than Kafka: signalling frames are ephemeral
(a lost offer is retried by the peer, nothing replays them), latency matters more than
durability, and every replica already holds a PostgreSQL connection; a Kafka consumer per
replica would need its own group (no load sharing wanted: every replica must see every
frame), adds rebalance pauses of seconds on scale events, and keeps 30 days of SDPs.

NOTIFY payloads are limited to 8000 bytes: a larger frame (a chat attachment) is stored in
`relayed_frames` and the notification carries only its id; receivers fetch it, in order
with the frames around it. Rows older than `_STORED_FRAME_TTL` are deleted.
Queued frames go out in batches (one round trip for up to `_BATCH` notifications); every
payload carries a sequence number because PostgreSQL folds identical payloads sent in one
transaction into one notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

_log = structlog.get_logger(__name__)

MAX_NOTIFY_BYTES = 7900
_BATCH = 200
_STORED_FRAME_TTL = 60.0
_PURGE_EVERY = 30.0
FrameHandler = Callable[[str, str, str | None, dict[str, Any]], None]
"""(room_id, to or "*", excluded participant, frame) from another replica."""


class PostgresFabric:
    def __init__(self, dsn: str, channel: str, schema: str) -> None:
        self._dsn = dsn
        self._channel = channel
        # The service's own schema first: `relayed_frames` lives there.
        self._server_settings = {"search_path": f'"{schema}"'}
        self.replica = uuid.uuid4().hex[:12]
        self._handler: FrameHandler | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(10_000)
        # Notifications in arrival order: a stored frame is fetched before the next is handled.
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sequence = 0
        self._last_purge = 0.0

    def on_frame(self, handler: FrameHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        self._listener = await asyncpg.connect(self._dsn, server_settings=self._server_settings)
        await self._listener.add_listener(self._channel, self._received)
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="fabric-sender"),
            asyncio.create_task(self._receive_loop(), name="fabric-receiver"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    def send(self, room_id: str, to: str, frame: dict[str, Any] | str, exclude: str | None) -> bool:
        """Queue a frame (a dict, or its JSON text) for the other replicas; False when it
        cannot cross."""
        self._sequence += 1
        envelope = json.dumps(
            {"o": self.replica, "n": self._sequence, "r": room_id, "t": to, "x": exclude},
            separators=(",", ":"),
        )
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        payload = f'{envelope[:-1]},"f":{text}}}'
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            _log.warning("fabric_backlog_full")
            return False
        return True

    async def _send_loop(self) -> None:
        connection: asyncpg.Connection | None = None
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < _BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                if connection is None or connection.is_closed():
                    connection = await asyncpg.connect(
                        self._dsn, server_settings=self._server_settings
                    )
                await self._notify(connection, batch)
                await self._purge(connection)
            except (OSError, asyncpg.PostgresError) as error:
                # Ephemeral by design: a lost frame is renegotiated by the peers.
                _log.warning("fabric_send_failed", error=repr(error), frames=len(batch))
                connection = None

    async def _notify(self, connection: asyncpg.Connection, batch: list[str]) -> None:
        small = [payload for payload in batch if len(payload.encode()) <= MAX_NOTIFY_BYTES]
        if len(small) == len(batch):
            await connection.execute(
                "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
                self._channel,
                batch,
            )
            return
        # Stored and notified in one transaction: the row is visible when the id arrives.
        async with connection.transaction():
            for payload in batch:
                if len(payload.encode()) > MAX_NOTIFY_BYTES:
                    frame_id = uuid.uuid4()
                    await connection.execute(
                        "INSERT INTO relayed_frames (frame_id, payload) VALUES ($1, $2)",
                        frame_id,
                        payload,
                    )
                    payload = json.dumps({"o": self.replica, "ref": str(frame_id)})
                await connection.execute("SELECT pg_notify($1, $2)", self._channel, payload)

    async def _purge(self, connection: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now - self._last_purge < _PURGE_EVERY:
            return
        self._last_purge = now
        await connection.execute(
            "DELETE FROM relayed_frames WHERE created_at < now() - make_interval(secs => $1)",
            _STORED_FRAME_TTL,
        )

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._inbox.put_nowait(payload)

    async def _receive_loop(self) -> None:
        while True:
            payload = await self._inbox.get()
            try:
                await self._handle(payload)
            except Exception as error:
                _log.warning("fabric_frame_dropped", error=repr(error))

    async def _handle(self, payload: str) -> None:
        message = json.loads(payload)
        if message["o"] == self.replica or self._handler is None:
            return
        if "ref" in message:
            assert self._listener is not None
            stored = await self._listener.fetchval(
                "SELECT payload FROM relayed_frames WHERE frame_id = $1",
                uuid.UUID(message["ref"]),
            )
            if stored is None:
                _log.warning("fabric_stored_frame_gone", ref=message["ref"])
                return
            message = json.loads(stored)
        self._handler(message["r"], message["t"], message["x"], message["f"])
