"""`maillage-directory republish`: every row one version higher, its snapshot in the outbox,
published by the relay; safe beside a concurrent edit; safe to run again
(real broker and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maillage.directory.v1 import events_pb2
from maillage_common.auth.keys import DevSigningKey
from maillage_common.db.engine import create_engine, create_session_factory
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_devstack.pytest_plugin import TEST_ISSUER, Mint, ServiceApp
from maillage_devstack.service_testing import eventually, service_settings
from maillage_directory.cli import run_republish
from maillage_directory.db.repositories import DirectoryRepository
from maillage_directory.settings import DirectorySettings
from maillage_directory.use_cases.aggregates import PROFESSIONAL, locked, now, write

from directory_testing import professional, site

pytestmark = pytest.mark.integration
PACKAGE = "maillage_directory"
TOPICS: dict[str, Any] = {
    "directory.professionals": events_pb2.ProfessionalChanged,
    "directory.sites": events_pb2.SiteChanged,
    "directory.kiosks": events_pb2.KioskChanged,
}
ALL_KINDS = ("site", "professional", "kiosk")


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


@pytest.fixture
def settings(
    database_url: str,
    kafka_bootstrap_servers: str,
    database_schema: str,
    dev_signing_key: DevSigningKey,
) -> DirectorySettings:
    """The settings the service under test runs with: the command runs beside it."""
    built = service_settings(
        PACKAGE,
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        schema=database_schema,
        signing_key=dev_signing_key,
        issuer=TEST_ISSUER,
    )
    assert isinstance(built, DirectorySettings)
    return built


@asynccontextmanager
async def sessions_of(
    settings: DirectorySettings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings, pool_size=2)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def _scalar(settings: DirectorySettings, sql: str) -> Any:
    async with sessions_of(settings) as sessions, sessions() as session:
        return (await session.execute(text(sql))).scalar_one()


async def _versions(settings: DirectorySettings) -> dict[str, int]:
    async with sessions_of(settings) as sessions, sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id::text, version FROM professional UNION ALL "
                "SELECT id::text, version FROM site UNION ALL SELECT id::text, version FROM kiosk"
            )
        )
        return {row[0]: row[1] for row in rows}


async def _outbox(settings: DirectorySettings) -> list[tuple[str, Message]]:
    async with sessions_of(settings) as sessions, sessions() as session:
        rows = await session.execute(
            text("SELECT topic, event_key, payload FROM outbox_event ORDER BY id")
        )
        return [(row[1], TOPICS[row[0]].FromString(row[2])) for row in rows]


async def _published(bootstrap: str, keys: set[str], count: int) -> list[tuple[str, Any]]:
    """Every event of `keys` on the directory topics, once `count` of them are there."""
    consumer = AIOKafkaConsumer(
        *TOPICS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[tuple[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                for part, records in batch.items():
                    found += [
                        (r.key.decode(), TOPICS[part.topic].FromString(r.value))
                        for r in records
                        if r.key is not None and r.key.decode() in keys and r.value
                    ]
    finally:
        await consumer.stop()
    return found


async def _seed(client: httpx.AsyncClient, token: str) -> None:
    """Two professionals, two sites (one deactivated: version 2), one kiosk."""
    for body in (professional(), professional(family_name="Klein")):
        assert (await client.post("/professionals", json=body, headers=auth(token))).is_success
    first = (await client.post("/sites", json=site(), headers=auth(token))).json()
    second = (await client.post("/sites", json=site(name="MSP Vosges"), headers=auth(token))).json()
    deactivated = await client.post(
        f"/sites/{second['id']}/deactivate", headers=auth(token, **{"If-Match": '"1"'})
    )
    assert deactivated.status_code == 200, deactivated.text
    kiosk = {"site_id": first["id"], "label": "Cabine 1", "devices": []}
    assert (await client.post("/kiosks", json=kiosk, headers=auth(token))).status_code == 201


async def _outbox_drained(settings: DirectorySettings) -> None:
    async def empty() -> bool | None:
        return True if await _scalar(settings, "SELECT count(*) FROM outbox_event") == 0 else None

    await eventually(empty, "the relay published the outbox")


async def test_republish_bumps_every_row_records_one_snapshot_each_and_publishes_them(
    service_app: ServiceApp, mint: Mint, settings: DirectorySettings, kafka_bootstrap_servers: str
) -> None:
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):
        await _seed(client, coordinator)
        await _outbox_drained(settings)
    # A data migration rewrites a row in place, version unchanged (as 0003 did).
    async with sessions_of(settings) as sessions, sessions.begin() as session:
        await session.execute(
            text(
                "UPDATE site SET data = jsonb_set(data, '{opening_hours,note}', "
                "'\"migrated\"') WHERE data->>'name' = 'MSP Vosges'"
            )
        )
    before = await _versions(settings)
    assert len(before) == 5

    # The service is stopped: what the command wrote is still in the outbox.
    report = await run_republish(settings, reason="migration 0003", kinds=ALL_KINDS, batch_size=2)
    assert report.republished == {"site": 2, "professional": 2, "kiosk": 1}
    after = await _versions(settings)
    assert after == {key: version + 1 for key, version in before.items()}
    recorded = await _outbox(settings)
    assert sorted(key for key, _ in recorded) == sorted(before)
    assert {key: event.version for key, event in recorded} == after  # type: ignore[attr-defined]
    for _, event in recorded:
        assert event.change == events_pb2.CHANGE_UPDATED  # type: ignore[attr-defined]
    sites = [e for _, e in recorded if isinstance(e, events_pb2.SiteChanged)]
    migrated = next(e for e in sites if e.site.name == "MSP Vosges")
    assert migrated.site.opening_hours.note == "migrated"
    assert migrated.site.active is False

    async with service_app(PACKAGE) as (_, client):
        published = await _published(kafka_bootstrap_servers, set(before), count=5 + 1 + 5)
        fresh = [(key, e.version) for key, e in published if e.version == after[key]]
        assert sorted(fresh) == sorted(after.items())  # exactly one per row, the new version
        await _outbox_drained(settings)
        site_id = migrated.site.id
        history = (await client.get(f"/sites/{site_id}/history", headers=auth(coordinator))).json()
        assert history[-1] == {
            "version": 3,
            "change": "republished",
            "actor": "system:republish",
            "changed_at": history[-1]["changed_at"],
            "diff": {},
            "reason": "migration 0003",
        }
        shown = await client.get(f"/sites/{site_id}")
        assert shown.headers["ETag"] == '"3"'
        assert shown.json()["opening_hours"]["note"] == "migrated"


async def test_an_edit_during_republish_is_kept_and_published_in_version_order(
    service_app: ServiceApp, mint: Mint, settings: DirectorySettings, kafka_bootstrap_servers: str
) -> None:
    coordinator = mint("coordinator", subject="coord-1")
    async with service_app(PACKAGE) as (_, client), sessions_of(settings) as sessions:
        body = professional()
        created = (await client.post("/professionals", json=body, headers=auth(coordinator))).json()
        pro_id = uuid.UUID(created["id"])

        # An edit is under way (its row locked, as the API locks it) when the command starts.
        async with UnitOfWork(sessions) as edit:
            current = await locked(DirectoryRepository(edit.session), PROFESSIONAL, pro_id, 1)
            running = asyncio.create_task(
                run_republish(settings, reason="test", kinds=["professional"], batch_size=10)
            )

            async def waiting() -> bool | None:
                blocked = await _scalar(
                    settings,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query ILIKE '%FOR NO KEY UPDATE%'",
                )
                return True if blocked else None

            await eventually(waiting, "the republish waits for the edit's row lock")
            data = {**current.data, "family_name": "Edited"}
            edited = replace(current, version=2, data=data, updated_at=now())
            diff = {"family_name": [current.data["family_name"], "Edited"]}
            await write(edit, PROFESSIONAL, edited, "updated", "coord-1", diff, new=False)
            await edit.commit()
        report = await running
        assert report.republished == {"professional": 1}

        shown = await client.get(f"/professionals/{pro_id}")
        assert shown.headers["ETag"] == '"3"'
        assert shown.json()["family_name"] == "Edited"
        history = (
            await client.get(f"/professionals/{pro_id}/history", headers=auth(coordinator))
        ).json()
        assert [(h["version"], h["change"]) for h in history] == [
            (1, "created"),
            (2, "updated"),
            (3, "republished"),
        ]
        published = await _published(kafka_bootstrap_servers, {str(pro_id)}, count=3)
        assert [e.version for _, e in published] == [1, 2, 3]
        assert published[2][1].professional.family_name == "Edited"

        # An edit after the republish names the new ETag and simply gets the next version.
        later = await client.put(
            f"/professionals/{pro_id}",
            json={**body, "family_name": "Later"},
            headers=auth(coordinator, **{"If-Match": '"3"'}),
        )
        assert later.status_code == 200, later.text
        assert later.headers["ETag"] == '"4"'


async def test_running_it_again_republishes_again(
    service_app: ServiceApp, mint: Mint, settings: DirectorySettings, kafka_bootstrap_servers: str
) -> None:
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):
        await _seed(client, coordinator)
        before = await _versions(settings)
        for _ in range(2):
            report = await run_republish(settings, reason="again", kinds=ALL_KINDS, batch_size=3)
            assert report.total == 5
        after = await _versions(settings)
        assert after == {key: version + 2 for key, version in before.items()}
        published = await _published(kafka_bootstrap_servers, set(before), count=5 + 1 + 10)
        latest: dict[str, int] = {}
        for key, event in published:
            assert event.version > latest.get(key, 0)  # per key, in version order
            latest[key] = event.version
        assert latest == after
        only_sites = await run_republish(settings, reason="sites", kinds=["site"], batch_size=200)
        assert only_sites.republished == {"site": 2}
