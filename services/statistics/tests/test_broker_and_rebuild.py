"""Through the real broker: live projections, Prometheus indicators, rebuild equality."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from maillage_common.events.catalogue import topic_of
from maillage_common.events.envelope import Event, encode_headers
from maillage_devstack.infra import run_psql
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_statistics.db.projections import apply_batch
from maillage_statistics.db.rebuild import defer_rollups
from maillage_statistics.handlers.projection import PROJECTORS_BY_TYPE
from maillage_statistics.rebuild import (
    RebuildWorkerError,
    _balanced,
    _run_in_processes,
    _WorkerFailure,
    rebuild,
)
from maillage_statistics.settings import StatisticsSettings

pytestmark = pytest.mark.integration
PACKAGE = "maillage_statistics"


async def publish(bootstrap: str, events: Sequence[Event[Any]]) -> None:
    """Send real CloudEvents records (binary mode), keyed by aggregate id."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for event in events:
            headers = encode_headers(
                event_id=event.id, event_type=event.type, source=event.source,
                subject=event.subject, time=event.time, traceparent=None,
            )  # fmt: skip
            await producer.send(
                topic_of(type(event.message)),
                key=event.subject.encode(),
                value=event.message.SerializeToString(),
                headers=headers,
            )
        await producer.flush()
    finally:
        await producer.stop()


async def wait_for_answers(
    checks: Any, client: httpx.AsyncClient, token: str, departement: str
) -> None:
    """Poll the API until the consumer has folded everything (no event to wait on).

    "Everything" is every answer the test asserts: waiting on a subset raced with the
    indicators folded last (the quality counts).
    """
    async with asyncio.timeout(90):
        while True:
            found = await checks.indicators(client, token, departement)
            try:
                checks.assert_known_answers(found)
            except AssertionError:
                await asyncio.sleep(0.5)
            else:
                return


async def test_events_through_the_broker_then_a_rebuild_gives_identical_indicators(
    service_app: ServiceApp,
    mint: Mint,
    history: Callable[[], Any],
    checks: Any,
    kafka_bootstrap_servers: str,
    database_url: str,
    database_schema: str,
) -> None:
    scenario = history()
    token = mint("coordinator")
    rebuilt_schema = f"{database_schema}_rb"
    rebuild_group = f"stats-rb-{uuid.uuid4().hex[:8]}"
    try:
        async with service_app(PACKAGE, consumer_group=f"stats-{uuid.uuid4().hex[:8]}") as (
            app,
            client,
        ):
            # Duplicates (same ce_id) and a shuffled order on the wire too.
            await publish(kafka_bootstrap_servers, scenario.shuffled_with_duplicates(seed=11))
            await wait_for_answers(checks, client, token, scenario.departement)
            live = await checks.indicators(client, token, scenario.departement)
            checks.assert_known_answers(live)
            metrics = await _metrics_with(client, f'departement="{scenario.departement}"')

            settings = app.state.runtime.settings
            assert isinstance(settings, StatisticsSettings)
            report = await rebuild(
                settings, schema=rebuilt_schema, consumer=rebuild_group, workers=2
            )
        assert report.workers == 2  # the shared broker holds many partitions: two processes
        assert report.applied >= len(scenario.events)
        assert report.duplicates >= len(scenario.shuffled_with_duplicates(11)) - len(
            scenario.events
        )
        # Cut over: the rebuilt schema with the rebuild's consumer name (inbox continuity).
        async with service_app(
            PACKAGE, database_schema=rebuilt_schema, consumer_group=rebuild_group
        ) as (_, rebuilt_client):
            rebuilt = await checks.indicators(rebuilt_client, token, scenario.departement)
    finally:
        run_psql(database_url, f'DROP SCHEMA IF EXISTS "{rebuilt_schema}" CASCADE;')
    live["fleet"] = rebuilt["fleet"] = None  # "online" depends on the clock, nothing else
    assert rebuilt == live
    d = scenario.departement
    assert (
        f'maillage_statistics_acts_total{{act="assisted_teleconsultation",departement="{d}",'
        f'site_category="ehpad",specialty="SM54"}} 13.0'
    ) in metrics
    assert (
        f'maillage_statistics_operational_sites{{departement="{d}",site_category="msp"}} 1.0'
        in (metrics)
    )


async def _metrics_with(client: httpx.AsyncClient, needle: str) -> str:
    # The collector serves a cached snapshot and refreshes after a scrape: poll.
    async with asyncio.timeout(60):
        while needle not in (text := (await client.get("/metrics")).text):
            await asyncio.sleep(0.5)
    return text


def test_partitions_are_dealt_whole_to_the_lightest_worker() -> None:
    sizes = {"a": 900, "b": 500, "c": 400, "d": 300, "e": 100}
    cut = {TopicPartition(topic, 0): (10, 10 + size) for topic, size in sizes.items()}
    shares = _balanced(cut, 2)
    assert sorted(tp.topic for share in shares for tp in share) == sorted(sizes)
    assert all(share[tp] == cut[tp][1] for share in shares for tp in share)  # read up to the cut
    loads = sorted(sum(sizes[tp.topic] for tp in share) for share in shares)
    assert loads == [1000, 1200]  # largest first to the lightest: 500+400+100, 900+300
    # More workers than partitions: no idle worker is started.
    assert len(_balanced(dict(list(cut.items())[:1]), 4)) == 1
    assert _balanced({}, 2) == []


@pytest.mark.integration
async def test_two_rebuild_workers_folding_the_same_rows_wait_and_never_deadlock(
    service_app: ServiceApp, checks: Any
) -> None:
    """Each batch locks rows in one order (projection, then key), whatever its write order."""
    # Two appointments in key order, and the session that names the first.
    (_, first, session), (_, second, _) = sorted(
        (checks.hand_fulfilled_and_its_session() for _ in range(2)), key=lambda made: made[0]
    )
    appointments = [first.subject, second.subject]

    def writes(*events: Event[Any]) -> list[Any]:
        return [write for event in events for write in PROJECTORS_BY_TYPE[event.type](event)]

    async with service_app(PACKAGE, **checks.without_broker) as (
        app,
        _,
    ):
        runtime = app.state.runtime

        async def other_worker() -> None:
            async with runtime.unit_of_work() as uow:
                await defer_rollups(uow.session)
                # Session first, then the appointments in reverse key order: locked in the
                # write order, this would hold both rows the first worker needs next.
                await apply_batch(uow.session, writes(session, second, first))
                await uow.commit()

        async with runtime.unit_of_work() as uow:
            await defer_rollups(uow.session)
            await apply_batch(uow.session, writes(first))
            waiting = asyncio.create_task(other_worker())
            await asyncio.sleep(0.5)
            assert not waiting.done()  # waiting on the first appointment, holding nothing
            await apply_batch(uow.session, writes(second, session))
            await uow.commit()
        await waiting
        async with runtime.unit_of_work() as uow:
            found = await uow.session.execute(
                text("SELECT count(*) FROM appointment WHERE appointment_id = ANY(:ids)"),
                {"ids": appointments},
            )
            assert found.scalar_one() == 2


async def test_a_rebuild_refuses_zero_workers_or_batches_before_touching_anything() -> None:
    unreachable = StatisticsSettings(
        DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:9/none",
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        AUTH_JWKS_URL="http://127.0.0.1:9/jwks.json",
        AUTH_ISSUER="nobody",
    )
    for knobs in ({"workers": 0}, {"batch_size": -1}):
        with pytest.raises(ValueError, match="at least 1"):
            await rebuild(unreachable, schema="statistics_rb", consumer="rb", **knobs)


def _answer_or_fail(job: tuple[str, int], answer: Connection) -> None:
    """A stand-in worker (spawned: it must be importable from this module)."""
    kind, value = job
    if kind == "die":
        os._exit(value)  # as a worker killed by the kernel: no answer, no cleanup
    if kind == "sleep":
        time.sleep(value)
    if kind == "raise":
        answer.send(_failure(value))
    else:
        answer.send(value)
    answer.close()


def _failure(value: int) -> _WorkerFailure:
    try:
        raise LookupError(f"partition {value} is gone")
    except LookupError:
        return _WorkerFailure(traceback.format_exc())


@pytest.fixture
def importable_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned children import `_answer_or_fail` by this module's name: give them its root."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[__name__.count(".")]))


@pytest.mark.usefixtures("importable_here")
def test_worker_processes_answer_in_job_order() -> None:
    assert _run_in_processes(_answer_or_fail, [("sleep", 1), ("value", 2)]) == [1, 2]


@pytest.mark.parametrize(
    ("failing", "reason"),
    [(("die", 3), "died (exit code 3)"), (("raise", 7), "LookupError: partition 7 is gone")],
)
@pytest.mark.usefixtures("importable_here")
def test_a_worker_that_fails_or_dies_stops_the_others_and_is_reported(
    failing: tuple[str, int], reason: str
) -> None:
    # A `multiprocessing.Pool` would wait forever for the task of a worker that died.
    with pytest.raises(RebuildWorkerError, match=re.escape(reason)):
        _run_in_processes(_answer_or_fail, [("sleep", 600), failing])
    assert multiprocessing.active_children() == []  # the sleeper was terminated, not left
