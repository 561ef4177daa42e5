"""The outbox relay: publishes recorded events to Kafka, never dropping one.

- Claims rows with `FOR UPDATE SKIP LOCKED` in id order and deletes them only after the
  broker acknowledged them (a high-water mark could skip rows: insert order is not
  commit order). A crash between ack and delete republishes: consumers dedupe by ce_id.
- One relay per service publishes at a time (a PostgreSQL advisory lock), which keeps
  per-key order when a service runs several replicas.
- While the broker is away it retries with capped exponential backoff; the outbox grows
  and the API keeps answering. It is woken by LISTEN/NOTIFY and polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from maillage_common.bus.topics import TopicSpec, ensure_topics
from maillage_common.db.messaging import OUTBOX, outbox_channel
from maillage_common.events.envelope import encode_headers
from maillage_common.observability.metrics import (
    EVENTS_PUBLISHED,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISH_FAILURES,
)

_log = structlog.get_logger(__name__)
_METRICS_EVERY_SECONDS = 1.0


class OutboxRelay:
    """Publishes one service's outbox; run `run()` as a background task, cancel to stop."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        producer_factory: Callable[[], AIOKafkaProducer],
        bootstrap_servers: str,
        topics: Iterable[TopicSpec],
        schema: str,
        source: str,
        batch_size: int = 200,
        poll_interval_seconds: float = 1.0,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self._engine = engine
        self._producer_factory = producer_factory
        self._bootstrap_servers = bootstrap_servers
        self._topics = tuple(topics)
        self._schema = schema
        self._source = source
        self._batch_size = batch_size
        self._poll_interval = poll_interval_seconds
        self._max_backoff = max_backoff_seconds
        self._wake = asyncio.Event()
        self._metrics_refreshed_at = 0.0
        self.broker_connected = False

    async def run(self) -> None:
        # Every failure is retried: a relay that died silently would strand the outbox.
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(multiplier=0.2, max=self._max_backoff),
            before_sleep=self._on_retry,
        )
        async for attempt in retrying:
            with attempt:
                await self._run_once()

    def _on_retry(self, state: Any) -> None:
        self.broker_connected = False
        OUTBOX_PUBLISH_FAILURES.inc()
        error = state.outcome.exception() if state.outcome else None
        expected = isinstance(error, (KafkaError, DBAPIError, OSError, TimeoutError))
        log = _log.warning if expected else _log.error
        log("outbox_relay_retrying", error=repr(error), attempt=state.attempt_number)

    async def _run_once(self) -> None:
        async with self._producer() as producer:
            await ensure_topics(self._bootstrap_servers, self._topics)
            # Connected even while another replica leads: this one is ready to take over.
            self.broker_connected = True
            async with self._leadership() as connection:
                await self._publish_while_leading(producer, connection)

    async def _publish_while_leading(
        self, producer: AIOKafkaProducer, connection: AsyncConnection
    ) -> None:
        while True:
            await self._check_leadership(connection)
            if await self.publish_batch(producer) == 0:
                await self._wait_for_work()

    @contextlib.asynccontextmanager
    async def _producer(self) -> AsyncIterator[AIOKafkaProducer]:
        producer = self._producer_factory()
        try:
            await producer.start()
            yield producer
        finally:
            await producer.stop()

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[AsyncConnection]:
        """Hold the service's relay lock on a dedicated connection that also LISTENs."""
        async with self._engine.connect() as connection:
            lock_key = f"{self._schema}.outbox_relay"
            while not (
                await connection.execute(
                    text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": lock_key}
                )
            ).scalar_one():
                await connection.rollback()
                await asyncio.sleep(self._poll_interval)
            await connection.commit()
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            channel = outbox_channel(self._schema)
            await driver.add_listener(channel, self._on_notify)
            try:
                yield connection
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(channel, self._on_notify)
                    await connection.execute(
                        text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": lock_key}
                    )

    async def _check_leadership(self, connection: AsyncConnection) -> None:
        # A dropped lock connection means another replica may lead now: stop publishing.
        await connection.execute(text("SELECT 1"))
        await connection.commit()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self) -> None:
        await self.refresh_metrics()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
        self._wake.clear()

    async def publish_batch(self, producer: AIOKafkaProducer) -> int:
        """Publish up to one batch; rows are deleted only once the broker has them all."""
        async with self._engine.begin() as connection:
            rows = (
                await connection.execute(
                    select(OUTBOX)
                    .order_by(OUTBOX.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            deliveries = [await self._send(producer, row) for row in rows]
            await asyncio.gather(*deliveries)
            await connection.execute(delete(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows])))
        for row in rows:
            EVENTS_PUBLISHED.labels(row.topic).inc()
        if time.monotonic() - self._metrics_refreshed_at > _METRICS_EVERY_SECONDS:
            await self.refresh_metrics()
        return len(rows)

    async def _send(self, producer: AIOKafkaProducer, row: Any) -> asyncio.Future[Any]:
        headers = encode_headers(
            event_id=row.event_id,
            event_type=row.event_type,
            source=self._source,
            subject=row.event_key,
            time=row.recorded_at,
            traceparent=row.traceparent,
        )
        future: asyncio.Future[Any] = await producer.send(
            row.topic, value=row.payload, key=row.event_key.encode(), headers=headers
        )
        return future

    async def refresh_metrics(self) -> None:
        self._metrics_refreshed_at = time.monotonic()
        async with self._engine.connect() as connection:
            backlog, oldest = (
                await connection.execute(
                    select(func.count(), func.min(OUTBOX.c.recorded_at)).select_from(OUTBOX)
                )
            ).one()
        OUTBOX_BACKLOG.set(backlog)
        if oldest is None:
            OUTBOX_OLDEST_AGE.set(0)
        else:
            OUTBOX_OLDEST_AGE.set(max(0.0, time.time() - oldest.timestamp()))
