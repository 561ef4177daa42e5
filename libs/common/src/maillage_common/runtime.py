"""The resources of one running service, built in the app's lifespan (never at import).

`Runtime` is what routes and handlers reach through dependencies: the session factory,
a unit-of-work factory, the token verifier, and the bus status for readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, wait_exponential_jitter

from maillage_common.auth.verified_tokens import VerifiedTokens
from maillage_common.auth.verifier import BearerVerifier, TokenVerifier
from maillage_common.bus.consumer import EventConsumer
from maillage_common.bus.relay import OutboxRelay
from maillage_common.bus.topics import TopicSpec, dead_letter_topic, ensure_topics
from maillage_common.db.engine import create_engine, create_session_factory
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.events.catalogue import EventCatalogue, topic_of
from maillage_common.settings import ServiceSettings

_log = structlog.get_logger(__name__)
_CONSUMERS_TASK = "consumers-start"
_STOP_STEP_SECONDS = 5.0


def build_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        max_request_size=settings.kafka_max_message_bytes,
        request_timeout_ms=10_000,
        linger_ms=2,
    )


@dataclass
class Runtime:
    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    token_verifier: BearerVerifier
    catalogue: EventCatalogue
    relay: OutboxRelay
    broker: KafkaBroker
    consumers: Sequence[EventConsumer]
    dead_letter_producer: AIOKafkaProducer | None = None
    consumers_started: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, max_event_bytes=self.settings.kafka_max_message_bytes)

    @property
    def bus_ready(self) -> bool:
        return self.relay.broker_connected and (self.consumers_started or not self.consumers)


def topic_specs(
    settings: ServiceSettings,
    published: Sequence[type[Message]],
    consumers: Sequence[EventConsumer],
) -> list[TopicSpec]:
    names = {topic_of(message_type) for message_type in published}
    for consumer in consumers:
        names.update(consumer.topics)
        names.update(dead_letter_topic(topic) for topic in consumer.topics)
    return [
        TopicSpec(name, settings.kafka_topic_partitions, settings.kafka_replication_factor)
        for name in sorted(names)
    ]


@contextlib.asynccontextmanager
async def run_runtime(
    settings: ServiceSettings,
    *,
    published: Sequence[type[Message]],
    consumers: Sequence[EventConsumer],
) -> AsyncIterator[Runtime]:
    """Start the database pool, the outbox relay and the consumers; stop them on exit.

    The broker may be away at start: the API serves at once (events wait in the outbox)
    and the bus connects in the background, retrying.
    """
    engine = create_engine(settings)
    topics = topic_specs(settings, published, consumers)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=create_session_factory(engine),
        token_verifier=VerifiedTokens(
            TokenVerifier(
                settings.auth_jwks_url,
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
            )
        ),
        catalogue=EventCatalogue.load(),
        relay=OutboxRelay(
            engine=engine,
            producer_factory=lambda: build_producer(settings),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topics=topics,
            schema=settings.owned_schema,
            source=settings.event_source,
            batch_size=settings.outbox_batch_size,
            poll_interval_seconds=settings.outbox_poll_interval_seconds,
            max_backoff_seconds=settings.outbox_max_backoff_seconds,
        ),
        broker=KafkaBroker(
            settings.kafka_bootstrap_servers,
            log_level=logging.DEBUG,
            client_id=settings.service_name,
        ),
        consumers=consumers,
    )
    for consumer in consumers:
        consumer.bind(
            runtime.broker,
            sessions=runtime.sessions,
            dead_letters=lambda: runtime.dead_letter_producer,
            catalogue=runtime.catalogue,
            settings=settings,
        )
    runtime._tasks.append(_supervised(runtime.relay.run(), "outbox-relay"))
    if consumers:
        runtime._tasks.append(_supervised(_start_consumers(runtime, topics), _CONSUMERS_TASK))
    try:
        yield runtime
    finally:
        await _stop(runtime)


def _supervised(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.create_task(work, name=name)
    task.add_done_callback(_report_death)
    return task


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.critical("background_task_died", task=task.get_name(), error=repr(task.exception()))


async def _start_consumers(runtime: Runtime, topics: Sequence[TopicSpec]) -> None:
    async for attempt in AsyncRetrying(wait=wait_exponential_jitter(multiplier=0.2, max=10)):
        with attempt:
            try:
                await ensure_topics(runtime.settings.kafka_bootstrap_servers, topics)
                runtime.dead_letter_producer = build_producer(runtime.settings)
                await runtime.dead_letter_producer.start()
                await runtime.broker.start()
            except Exception as error:
                _log.warning("consumers_not_started", error=repr(error))
                await _close_bus(runtime)
                raise
    runtime.consumers_started = True
    _log.info("consumers_started", consumers=[c.name for c in runtime.consumers])


async def _close_bus(runtime: Runtime) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_STOP_STEP_SECONDS):
            await runtime.broker.stop()
    producer, runtime.dead_letter_producer = runtime.dead_letter_producer, None
    if producer is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_STEP_SECONDS):
                await producer.stop()


async def _stop(runtime: Runtime) -> None:
    # A start still under way is cancelled before closing, or it would open consumers
    # nobody closes. Then consumers stop (committing what they handled); the relay's open
    # batch rolls back and is published again next start (consumers dedupe).
    starting = [task for task in runtime._tasks if task.get_name() == _CONSUMERS_TASK]
    await _cancel(starting)
    await _close_bus(runtime)
    await _cancel(runtime._tasks)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_STOP_STEP_SECONDS):
            await runtime.engine.dispose()


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    # Bounded: a stop that hangs (broker or database unresponsive) would block SIGTERM;
    # nothing is lost by moving on, unacknowledged events stay in the outbox.
    _, pending = await asyncio.wait(tasks, timeout=_STOP_STEP_SECONDS)
    for task in pending:
        _log.warning("task_did_not_stop", task=task.get_name())


# Allocations (net of frees) between young collections. A request allocates thousands of
# objects, most freed by reference counting long before a collection; collecting every 700
# (the default) mostly re-scanned the objects of requests still in flight and promoted them
# to be walked again (profiles: ~15 % of booking's busy time, ~10 µs per telemetry
# measurement, in the collector).
_YOUNG_COLLECTION_THRESHOLD = 20_000
_frozen_apps = 0
_thresholds_before_freeze: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector off what startup built, for as long as the service runs.

    The framework, SQLAlchemy, pydantic and protobuf machinery live until exit: once started,
    they move to the collector's permanent generation (`gc.freeze()`), so a full collection
    only walks what requests created since. The collector keeps running. Counted, so tests
    that run several apps in one process restore the defaults once the last one stops.
    """
    global _frozen_apps, _thresholds_before_freeze
    if _frozen_apps == 0:
        _thresholds_before_freeze = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(_YOUNG_COLLECTION_THRESHOLD, *_thresholds_before_freeze[1:])
    _frozen_apps += 1
    try:
        yield
    finally:
        _frozen_apps -= 1
        if _frozen_apps == 0:
            gc.set_threshold(*_thresholds_before_freeze)
            gc.unfreeze()
