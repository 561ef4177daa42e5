"""Known answers, order and duplicate tolerance, through the real PostgreSQL.

Events are applied in-process through the consumer's own handler (`project_event`) here;
`test_broker_and_rebuild.py` sends them through the real broker.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from maillage_common.runtime import Runtime
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_statistics.db.indicators import (
    SNAPSHOT_CONNECTIONS,
    IndicatorQueries,
    Row,
    read_in_one_snapshot,
)
from maillage_statistics.db.rebuild import truncate_projections
from maillage_statistics.domain.rules import Filters, UsageRule, UsageStatus
from maillage_statistics.use_cases.indicators import IndicatorParameters, compute_indicator

pytestmark = pytest.mark.integration
PACKAGE = "maillage_statistics"


async def test_known_answers_survive_duplicates_and_any_order(
    service_app: ServiceApp, mint: Mint, history: Callable[[], Any], checks: Any
) -> None:
    scenario = history()
    token = mint("coordinator")
    # No broker: the consumer must not fold other tests' events while this one truncates.
    async with service_app(PACKAGE, **checks.without_broker) as (
        app,
        client,
    ):
        runtime: Runtime = app.state.runtime
        await checks.apply_in_process(runtime, scenario.shuffled_with_duplicates(seed=3))
        shuffled = await checks.indicators(client, token, scenario.departement)
        checks.assert_known_answers(shuffled)

        async with runtime.unit_of_work() as uow:
            await truncate_projections(uow.session, "unused")
            await uow.commit()
        await checks.apply_in_process(runtime, scenario.events)
        in_order = await checks.indicators(client, token, scenario.departement)
    assert in_order == shuffled


async def test_filters_slice_by_site_category_specialty_and_period(
    service_app: ServiceApp, mint: Mint, history: Callable[[], Any], checks: Any
) -> None:
    scenario = history()
    headers = {"Authorization": f"Bearer {mint('coordinator')}"}
    async with service_app(PACKAGE, consumer_group=f"stats-{uuid.uuid4().hex[:8]}") as (
        app,
        client,
    ):
        await checks.apply_in_process(app.state.runtime, scenario.events)
        base = {"departement": scenario.departement}

        async def rows(name: str, **query: str) -> list[dict[str, Any]]:
            response = await client.get(
                f"/v1/indicators/{name}", params={**base, **query}, headers=headers
            )
            assert response.status_code == 200, response.text
            rows: list[dict[str, Any]] = response.json()["rows"]
            return rows

        ehpad = await rows("teleconsultations", site_category="ehpad")
        assert [r["teleconsultations"] for r in ehpad] == [13]
        assert await rows("teleconsultations", site_category="msp", specialty="SM54") == []
        february = await rows(
            "teleconsultations-monthly",
            since="2026-02-01T00:00:00+01:00",
            until="2026-03-01T00:00:00+01:00",
        )
        assert february == [{"month": "2026-02", "teleconsultations": 7}]
        dedicated = await rows("sites-by-departement", deployment_model="hotspot_dedie")
        assert dedicated == [{"departement": scenario.departement, "sites": 1}]

        csv_response = await client.get(
            "/v1/indicators/teleconsultations-monthly",
            params={**base, "format": "csv"},
            headers=headers,
        )
        assert csv_response.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(csv_response.text)))
        assert [r["teleconsultations"] for r in table] == ["4", "7", "4"]

        naive = await client.get(
            "/v1/indicators/teleconsultations", params={"since": "2026-01-01T00:00:00"},
            headers=headers,
        )  # fmt: skip
        assert naive.status_code == 422
        assert naive.json()["errors"][0]["field"] == "since"
        unknown = await client.get("/v1/indicators/nope", headers=headers)
        assert unknown.status_code == 404


async def test_access_detailed_for_coordinators_open_data_public_and_suppressed(
    service_app: ServiceApp, mint: Mint, history: Callable[[], Any], checks: Any
) -> None:
    scenario = history()
    async with service_app(PACKAGE, consumer_group=f"stats-{uuid.uuid4().hex[:8]}") as (
        app,
        client,
    ):
        await checks.apply_in_process(app.state.runtime, scenario.events)
        assert (await client.get("/v1/indicators/teleconsultations")).status_code == 401
        nurse = {"Authorization": f"Bearer {mint('nurse', site_id=str(uuid.uuid4()))}"}
        assert (await client.get("/v1/observatory", headers=nurse)).status_code == 403
        service = {"Authorization": f"Bearer {mint('service')}"}
        assert (await client.get("/v1/indicators", headers=service)).status_code == 200

        response = await client.get(
            "/v1/open-data.csv", params={"departement": scenario.departement}
        )
        assert response.status_code == 200
        table = list(csv.DictReader(io.StringIO(response.text)))
        values = {(r["month"], r["indicator"]): r["value"] for r in table}
        # 4, 7, 4 teleconsultations per month and 3 sites: cells under 5 are blank.
        assert values[("2026-02", "teleconsultations")] == "7"
        assert values[("2026-01", "teleconsultations")] == ""
        assert values[("", "operational_sites")] == ""
        assert all(set(r) == {"departement", "month", "indicator", "value"} for r in table)


async def test_summary_lanes_share_one_read_only_snapshot_on_several_connections(
    service_app: ServiceApp,
) -> None:
    written = asyncio.Event()

    async def probe(q: IndicatorQueries) -> list[Row]:
        if not written.is_set():
            # The first section (on the exporting connection, whose snapshot is taken):
            # a transaction commits, which a snapshot taken from now on would see.
            async with runtime.unit_of_work() as writer:
                await writer.session.execute(text("SELECT txid_current()"))
                await writer.commit()
            written.set()
        # Each section holds its connection a moment, so every lane takes one.
        return await q._rows(
            """SELECT pg_backend_pid() AS pid, pg_current_snapshot()::text AS snapshot,
                      current_setting('transaction_isolation') AS isolation,
                      current_setting('transaction_read_only') AS read_only
               FROM pg_sleep(0.2)""",
            {},
        )

    async with service_app(PACKAGE, consumer_group=f"stats-{uuid.uuid4().hex[:8]}") as (app, _):
        runtime: Runtime = app.state.runtime
        async with runtime.unit_of_work() as uow:
            found = await read_in_one_snapshot(
                uow.session, {f"section-{n}": probe for n in range(SNAPSHOT_CONNECTIONS * 2)}
            )
    rows = [row for section in found.values() for row in section]
    assert len(found) == SNAPSHOT_CONNECTIONS * 2
    assert len({row["pid"] for row in rows}) == SNAPSHOT_CONNECTIONS
    assert {row["snapshot"] for row in rows} == {rows[0]["snapshot"]}
    assert {(row["isolation"], row["read_only"]) for row in rows} == {("repeatable read", "on")}


async def test_usage_status_counts_the_statuses_of_site_usage(
    service_app: ServiceApp, history: Callable[[], Any], checks: Any
) -> None:
    scenario = history()
    # No broker: both reads must see the same rows, with no other test's events arriving.
    async with service_app(PACKAGE, **checks.without_broker) as (
        app,
        _,
    ):
        runtime: Runtime = app.state.runtime
        await checks.apply_in_process(runtime, scenario.events)
        for filters, rule in [
            (Filters(), UsageRule()),
            (Filters(until=datetime(2026, 4, 1, tzinfo=UTC)), UsageRule()),
            (
                Filters(departement=scenario.departement, until=datetime(2026, 3, 1, tzinfo=UTC)),
                UsageRule(2, 1),
            ),
            (Filters(until=datetime(2026, 3, 1, tzinfo=UTC)), UsageRule(1, 2)),
            (Filters(until=datetime(2026, 5, 1, tzinfo=UTC)), UsageRule(2, 6)),
            (Filters(site_category="ehpad"), UsageRule(1, 12)),
        ]:
            parameters = IndicatorParameters(
                usage_rule=rule, now=lambda: datetime(2026, 7, 15, tzinfo=UTC)
            )
            per_site = await compute_indicator(
                runtime.unit_of_work(), "site-usage", filters, parameters
            )
            counted = await compute_indicator(
                runtime.unit_of_work(), "usage-status", filters, parameters
            )
            expected = Counter(row["status"] for row in per_site)
            assert {row["status"]: row["sites"] for row in counted} == {
                status.value: expected.get(status.value, 0) for status in UsageStatus
            }


async def test_a_summary_reads_alone_when_the_pool_has_no_spare_connection(
    service_app: ServiceApp,
) -> None:
    async def probe(q: IndicatorQueries) -> list[Row]:
        return await q._rows("SELECT pg_backend_pid() AS pid FROM pg_sleep(0.05)", {})

    async with service_app(PACKAGE, consumer_group=f"stats-{uuid.uuid4().hex[:8]}") as (app, _):
        runtime: Runtime = app.state.runtime
        pool = runtime.engine.sync_engine.pool
        held = [await runtime.engine.connect() for _ in range(pool.size() - pool.checkedout())]
        try:
            async with runtime.unit_of_work() as uow:
                sections = {f"s{n}": probe for n in range(4)}
                found = await read_in_one_snapshot(uow.session, sections)
        finally:
            for connection in held:
                await connection.close()
    assert len({row["pid"] for rows in found.values() for row in rows}) == 1
