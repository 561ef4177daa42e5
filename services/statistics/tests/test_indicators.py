"""Known answers, order and duplicate tolerance, through the real PostgreSQL.

Events are applied in-process through the consumer's own handler (`project_event`) here;
`test_broker_and_rebuild.py` sends them through the real broker.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from maillage_common.runtime import Runtime
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_statistics.db.rebuild import truncate_projections

pytestmark = pytest.mark.integration
PACKAGE = "maillage_statistics"


async def test_known_answers_survive_duplicates_and_any_order(
    service_app: ServiceApp, mint: Mint, history: Callable[[], Any], checks: Any
) -> None:
    scenario = history()
    token = mint("coordinator")
    async with service_app(PACKAGE, consumer_group=f"stats-{uuid.uuid4().hex[:8]}") as (
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
        assert [r["teleconsultations"] for r in ehpad] == [12]
        assert await rows("teleconsultations", site_category="msp", specialty="SM54") == []
        february = await rows(
            "teleconsultations-monthly",
            since="2026-02-01T00:00:00+01:00",
            until="2026-03-01T00:00:00+01:00",
        )
        assert february == [{"month": "2026-02", "teleconsultations": 6}]
        dedicated = await rows("sites-by-departement", deployment_model="hotspot_dedie")
        assert dedicated == [{"departement": scenario.departement, "sites": 1}]

        csv_response = await client.get(
            "/v1/indicators/teleconsultations-monthly",
            params={**base, "format": "csv"},
            headers=headers,
        )
        assert csv_response.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(csv_response.text)))
        assert [r["teleconsultations"] for r in table] == ["4", "6", "4"]

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
        # 4, 6, 4 teleconsultations per month and 3 sites: cells under 5 are blank.
        assert values[("2026-02", "teleconsultations")] == "6"
        assert values[("2026-01", "teleconsultations")] == ""
        assert values[("", "operational_sites")] == ""
        assert all(set(r) == {"departement", "month", "indicator", "value"} for r in table)
