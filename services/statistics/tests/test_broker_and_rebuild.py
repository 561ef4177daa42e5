"""Through the real broker: live projections, Prometheus indicators, rebuild equality."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from maillage_common.events.catalogue import topic_of
from maillage_common.events.envelope import Event, encode_headers
from maillage_devstack.infra import run_psql
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_statistics.rebuild import rebuild
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
            report = await rebuild(settings, schema=rebuilt_schema, consumer=rebuild_group)
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
