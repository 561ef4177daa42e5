"""The idempotent, poison-proof consumer every service subscribes with.

For each record: decode (undecodable, unknown type or oversized → dead-letter topic at
once); claim (consumer, ce_id) in the inbox and apply the handler in ONE transaction
(a redelivery finds the claim and has no second effect); on a handler failure retry a
few times, then dead-letter it so the partition keeps flowing. Infrastructure outages
(database unreachable) are not the message's fault: the record is redelivered (NACK
seeks back) after a pause, never dead-lettered. Each record is bounded in time, so no
handler holds the partition past the poll interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from google.protobuf.message import Message
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maillage_common.bus.topics import dead_letter_topic
from maillage_common.db.messaging import INBOX
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.events.catalogue import EventCatalogue, topic_of
from maillage_common.events.envelope import (
    Event,
    UndecodableEventError,
    decode_event,
    header_map,
)
from maillage_common.observability.metrics import CONSUMER_LAG, EVENTS_CONSUMED
from maillage_common.observability.tracing import continue_trace, set_current_traceparent

_log = structlog.get_logger(__name__)

EventHandler = Callable[[Event[Any], UnitOfWork], Awaitable[None]]
"""Applies one event inside the consumer's transaction (it may record events too)."""


class TransientError(Exception):
    """Raised by a handler for a failure that is not the message's fault: redeliver later."""


_TRANSIENT = (TransientError, OperationalError, InterfaceError, PoolTimeoutError, OSError)
_REDELIVERY_PAUSE_SECONDS = 1.0


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _TRANSIENT)


class EventConsumer:
    """One consumer group: the topics it reads and a handler per event type."""

    def __init__(
        self,
        name: str,
        *,
        handlers: Mapping[type[Message], EventHandler],
        topics: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self._handlers = {
            message_type.DESCRIPTOR.full_name: handler for message_type, handler in handlers.items()
        }
        self.topics = tuple(topics or sorted({topic_of(t) for t in handlers}))

    def bind(
        self,
        broker: KafkaBroker,
        *,
        sessions: async_sessionmaker[AsyncSession],
        dead_letters: Callable[[], AIOKafkaProducer | None],
        catalogue: EventCatalogue,
        max_attempts: int = 3,
        handler_timeout_seconds: float = 30.0,
        max_message_bytes: int = 1_000_000,
    ) -> None:
        """Subscribe on `broker` (call before the broker starts)."""
        self._sessions = sessions
        self._dead_letters = dead_letters
        self._catalogue = catalogue
        self._max_attempts = max_attempts
        self._handler_timeout = handler_timeout_seconds
        self._max_bytes = max_message_bytes

        async def on_record(message: Annotated[KafkaMessage, Context("message")]) -> None:
            await self.process(message.raw_message, getattr(message, "consumer", None))

        broker.subscriber(
            *self.topics,
            group_id=self.name,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_poll_interval_ms=int(
                (handler_timeout_seconds + 1) * (max_attempts + 1) * 1000 + 60_000
            ),
            title=f"{self.name}",
        )(on_record)

    async def process(self, record: Any, kafka_consumer: Any = None) -> None:
        """Handle one record; raise only to have it redelivered (NACK)."""
        assert isinstance(record, ConsumerRecord)
        self._record_lag(record, kafka_consumer)
        try:
            event = self._decode(record)
        except UndecodableEventError as error:
            await self._dead_letter(record, error, attempts=0)
            return
        handler = self._handlers.get(event.type)
        if handler is None:
            self._count(record, "ignored")
            return
        set_current_traceparent(continue_trace(event.traceparent))
        await self._apply_with_retries(record, event, handler)

    def _decode(self, record: ConsumerRecord[Any, Any]) -> Event[Message]:
        size = len(record.value or b"")
        if size > self._max_bytes:
            raise UndecodableEventError(f"message of {size} bytes exceeds {self._max_bytes}")
        return decode_event(header_map(record.headers), record.value, self._catalogue)

    async def _apply_with_retries(
        self, record: ConsumerRecord[Any, Any], event: Event[Message], handler: EventHandler
    ) -> None:
        failure: Exception | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with asyncio.timeout(self._handler_timeout):
                    outcome = await self._apply(event, handler)
                self._count(record, outcome)
                return
            except Exception as error:
                if _is_transient(error):
                    _log.warning(
                        "consumer_transient_failure", consumer=self.name, error=repr(error)
                    )
                    self._count(record, "retried")
                    await asyncio.sleep(_REDELIVERY_PAUSE_SECONDS)
                    raise
                failure = error
                _log.warning(
                    "consumer_handler_failed",
                    consumer=self.name,
                    event_type=event.type,
                    event_id=str(event.id),
                    attempt=attempt,
                    error=repr(error),
                )
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        assert failure is not None
        await self._dead_letter(record, failure, attempts=self._max_attempts)

    async def _apply(self, event: Event[Message], handler: EventHandler) -> str:
        async with UnitOfWork(self._sessions, max_event_bytes=self._max_bytes) as uow:
            claimed = await uow.session.execute(
                insert(INBOX)
                .values(consumer=self.name, event_id=event.id, event_type=event.type)
                .on_conflict_do_nothing()
                .returning(INBOX.c.event_id)
            )
            if claimed.first() is None:
                return "duplicate"
            await handler(event, uow)
            await uow.commit()
        return "applied"

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], error: BaseException, *, attempts: int
    ) -> None:
        producer = self._dead_letters()
        if producer is None:
            raise TransientError("dead-letter producer is not connected yet")
        headers = [
            *list(record.headers),
            ("dlq_consumer", self.name.encode()),
            ("dlq_error_type", type(error).__name__.encode()),
            ("dlq_error_message", str(error)[:1000].encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await producer.send_and_wait(
            dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        _log.error(
            "event_dead_lettered",
            consumer=self.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=repr(error),
        )
        self._count(record, "dead_lettered")

    def _count(self, record: ConsumerRecord[Any, Any], outcome: str) -> None:
        EVENTS_CONSUMED.labels(self.name, record.topic, outcome).inc()

    def _record_lag(self, record: ConsumerRecord[Any, Any], kafka_consumer: Any) -> None:
        if kafka_consumer is None:
            return
        highwater = kafka_consumer.highwater(TopicPartition(record.topic, record.partition))
        if highwater is not None:
            CONSUMER_LAG.labels(self.name, record.topic, str(record.partition)).set(
                max(0, highwater - record.offset - 1)
            )
