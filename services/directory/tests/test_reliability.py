"""Concurrency and outage drills for the directory (real broker and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from maillage_devstack.infra import EmbeddedPostgres
from maillage_devstack.pytest_plugin import Mint, ServiceApp

from directory_testing import professional

pytestmark = pytest.mark.integration
PACKAGE = "maillage_directory"
CLIENTS = 20


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def test_concurrent_writers_one_wins_the_rest_are_told(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):
        body = professional()
        creates = await asyncio.gather(
            *(
                client.post("/professionals", json=body, headers=auth(coordinator))
                for _ in range(CLIENTS)
            )
        )
        assert Counter(r.status_code for r in creates) == {201: 1, 409: CLIENTS - 1}
        created = next(r.json() for r in creates if r.status_code == 201)

        path = f"/professionals/{created['id']}"
        updates = await asyncio.gather(
            *(
                client.put(
                    path,
                    json={**body, "family_name": f"Name {i}"},
                    headers=auth(coordinator, **{"If-Match": '"1"'}),
                )
                for i in range(CLIENTS)
            )
        )
        assert Counter(r.status_code for r in updates) == {200: 1, 412: CLIENTS - 1}
        winner = next(r.json() for r in updates if r.status_code == 200)
        history = (await client.get(f"{path}/history", headers=auth(coordinator))).json()
        assert [h["version"] for h in history] == [1, 2]
        current = (await client.get(path)).json()
        assert current["family_name"] == winner["family_name"]


async def test_database_outage_answers_503_writes_nothing_and_recovers(
    service_app: ServiceApp, mint: Mint, embedded_postgres: EmbeddedPostgres
) -> None:
    coordinator = mint("coordinator")
    body = professional()
    async with service_app(PACKAGE) as (_, client):
        await asyncio.to_thread(embedded_postgres.stop)
        try:
            async with asyncio.timeout(30):
                during = await client.post("/professionals", json=body, headers=auth(coordinator))
                search = await client.get("/search/professionals")
        finally:
            await asyncio.to_thread(embedded_postgres.start)
        assert during.status_code == 503
        assert during.headers["Retry-After"]
        assert search.status_code == 503

        async with asyncio.timeout(60):
            while (await client.get("/search/professionals")).status_code != 200:
                await asyncio.sleep(0.5)
        found = (await client.get("/search/professionals")).json()
        assert found["items"] == []
        after = await client.post("/professionals", json=body, headers=auth(coordinator))
        assert after.status_code == 201
