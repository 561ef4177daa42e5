"""The idempotent, poison-proof consumer every service subscribes with.

Records arrive in batches (one offset commit per batch). A batch is applied in ONE
transaction: each event's (consumer, ce_id) is claimed in the inbox next to its effect, so
a redelivered event has no second effect. If that transaction fails, the batch is applied
again record by record, each in its own transaction with a few attempts; a record that
still fails — or cannot be decoded (unknown type, bad payload, oversized) — goes to
`<topic>.dlq` with the error in headers, and the partition keeps flowing. Dead-lettered
events are claimed in the inbox too, so a redelivered batch does not dead-letter them twice.

Infrastructure outages (database unreachable) are not the message's fault: the batch is
redelivered (NACK seeks back) after a pause, never dead-lettered. A batch that overruns its
time budget is also handed back the same way, so no handler holds a partition past the
poll interval; what it already applied is skipped on redelivery.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
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
from maillage_common.settings import ServiceSettings

_log = structlog.get_logger(__name__)

EventHandler = Callable[[Event[Any], UnitOfWork], Awaitable[None]]
"""Applies one event inside the consumer's transaction (it may record events too)."""


class TransientError(Exception):
    """Raised by a handler for a failure that is not the message's fault: redeliver later."""


class InvalidEventError(Exception):
    """Raised by a handler for an event that can never be applied (inconsistent content):
    it is dead-lettered at once, without retries."""


class BatchBudgetExceededError(TransientError):
    """The batch ran out of time: hand the rest back to the broker for redelivery."""


_TRANSIENT = (TransientError, OperationalError, InterfaceError, PoolTimeoutError, OSError)
_REDELIVERY_PAUSE_SECONDS = 1.0


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _TRANSIENT)


@dataclass(frozen=True, slots=True)
class _Delivery:
    record: ConsumerRecord[Any, Any]
    event: Event[Message]
    handler: EventHandler


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
        settings: ServiceSettings,
    ) -> None:
        """Subscribe on `broker` (call before the broker starts)."""
        self._sessions = sessions
        self._dead_letters = dead_letters
        self._catalogue = catalogue
        self._max_attempts = settings.consumer_max_attempts
        self._handler_timeout = settings.consumer_handler_timeout_seconds
        self._budget = settings.consumer_batch_budget_seconds
        self._max_bytes = settings.kafka_max_message_bytes

        async def on_batch(message: Annotated[KafkaMessage, Context("message")]) -> None:
            records = message.raw_message
            batch = records if isinstance(records, tuple) else (records,)
            await self.process(batch, getattr(message, "consumer", None))

        self.group_id = f"{settings.consumer_group_prefix}{self.name}"
        broker.subscriber(
            *self.topics,
            group_id=self.group_id,
            batch=True,
            max_records=settings.consumer_batch_size,
            batch_timeout_ms=settings.consumer_fetch_max_wait_ms,
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            # The budget hands a slow batch back well before the group would evict us.
            max_poll_interval_ms=int((self._budget + self._handler_timeout) * 1000 + 60_000),
            title=self.group_id,
        )(on_batch)

    async def process(self, records: Sequence[Any], kafka_consumer: Any = None) -> None:
        """Handle one batch; raise only to have it redelivered (NACK)."""
        deadline = time.monotonic() + self._budget
        deliveries: list[_Delivery] = []
        for record in records:
            assert isinstance(record, ConsumerRecord)
            self._record_lag(record, kafka_consumer)
            delivery = await self._admit(record)
            if delivery is not None:
                deliveries.append(delivery)
        if not deliveries:
            return
        try:
            async with asyncio.timeout(self._handler_timeout):
                outcomes = await self._apply_all(deliveries)
        except Exception as error:
            if _is_transient(error):
                await self._pause_for_redelivery(error)
            _log.info("consumer_batch_split", consumer=self.name, error=repr(error))
            for delivery in deliveries:
                if time.monotonic() > deadline:
                    raise BatchBudgetExceededError("batch budget exhausted") from error
                await self._apply_with_retries(delivery)
            return
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            self._count(delivery.record, outcome)

    async def _admit(self, record: ConsumerRecord[Any, Any]) -> _Delivery | None:
        """Decode a record; dead-letter what cannot be decoded, skip unhandled types."""
        try:
            event = self._decode(record)
        except UndecodableEventError as error:
            await self._dead_letter(record, error, attempts=0)
            return None
        handler = self._handlers.get(event.type)
        if handler is None:
            self._count(record, "ignored")
            return None
        return _Delivery(record, event, handler)

    def _decode(self, record: ConsumerRecord[Any, Any]) -> Event[Message]:
        size = len(record.value or b"")
        if size > self._max_bytes:
            raise UndecodableEventError(f"message of {size} bytes exceeds {self._max_bytes}")
        return decode_event(header_map(record.headers), record.value, self._catalogue)

    async def _apply_all(self, deliveries: Sequence[_Delivery]) -> list[str]:
        async with UnitOfWork(self._sessions, max_event_bytes=self._max_bytes) as uow:
            fresh = await self._claim(uow, [d.event for d in deliveries])
            outcomes = []
            for delivery in deliveries:
                # `discard`: the same ce_id twice in one batch is applied once.
                if delivery.event.id not in fresh:
                    outcomes.append("duplicate")
                    continue
                fresh.discard(delivery.event.id)
                set_current_traceparent(continue_trace(delivery.event.traceparent))
                await delivery.handler(delivery.event, uow)
                outcomes.append("applied")
            await uow.commit()
        return outcomes

    async def _claim(self, uow: UnitOfWork, events: Sequence[Event[Message]]) -> set[uuid.UUID]:
        """Claim every event in one statement; return the ids seen for the first time."""
        claimed = await uow.session.execute(
            insert(INBOX)
            .values(
                [{"consumer": self.name, "event_id": e.id, "event_type": e.type} for e in events]
            )
            .on_conflict_do_nothing()
            .returning(INBOX.c.event_id)
        )
        return set(claimed.scalars())

    async def _apply_with_retries(self, delivery: _Delivery) -> None:
        failure: Exception | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with asyncio.timeout(self._handler_timeout):
                    outcome = (await self._apply_all([delivery]))[0]
                self._count(delivery.record, outcome)
                return
            except InvalidEventError as error:
                failure = error
                break
            except Exception as error:
                if _is_transient(error):
                    await self._pause_for_redelivery(error)
                failure = error
                _log.warning(
                    "consumer_handler_failed",
                    consumer=self.name,
                    event_type=delivery.event.type,
                    event_id=str(delivery.event.id),
                    attempt=attempt,
                    error=repr(error),
                )
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        assert failure is not None
        await self._dead_letter(delivery.record, failure, attempts=attempt)
        await self._remember_dead_letter(delivery.event)

    async def _pause_for_redelivery(self, error: Exception) -> None:
        """Infrastructure is away: wait a little, then raise so the batch is redelivered."""
        _log.warning("consumer_transient_failure", consumer=self.name, error=repr(error))
        await asyncio.sleep(_REDELIVERY_PAUSE_SECONDS)
        raise error

    async def _remember_dead_letter(self, event: Event[Message]) -> None:
        async with UnitOfWork(self._sessions) as uow:
            await self._claim(uow, [event])
            await uow.commit()

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
