"""The monthly rollups equal the base tables, whatever the order, duplicates and deletions."""
# ruff: noqa: S608 - SQL assembled from constants.

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text

from maillage_common.runtime import Runtime
from maillage_devstack.pytest_plugin import ServiceApp
from maillage_statistics.db.indicators import _split
from maillage_statistics.domain.rules import Filters

PACKAGE = "maillage_statistics"
_MONTH = "coalesce(date_trunc('month', {0} AT TIME ZONE 'Europe/Paris')::date, '-infinity')"

ROLLUP_VERSUS_BASE = {
    "teleconsultation_month": (
        """SELECT month, site_id, departement, specialty_code, mode, assistance, sessions
           FROM teleconsultation_month""",
        f"""SELECT {_MONTH.format("started_at")}, site_id, departement, specialty_code, mode,
                   assistance, count(*)
            FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6""",
    ),
    "specialty_month": (
        "SELECT month, site_id, source, specialty_code, responder_id, acts FROM specialty_month",
        f"""SELECT {_MONTH.format("started_at")}, site_id, 'teleconsultation', specialty_code,
                   responder_id, count(*)
            FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT {_MONTH.format("requested_at")}, site_id, 'expertise_requested',
                   specialty_code, '', count(*)
            FROM expertise WHERE requested_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT {_MONTH.format("requested_at")}, site_id, 'expertise_answered',
                   specialty_code, responder_id, count(*)
            FROM expertise WHERE answered_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5""",
    ),
}


async def _rollups_and_bases(
    runtime: Runtime, departement: str
) -> dict[str, tuple[set[Any], set[Any]]]:
    """Rollup rows and base-table rows of this scenario's sites, from one snapshot.

    The service's live consumer may be replaying other tests' events into the same tables
    meanwhile: only this scenario's sites (its département is unique) are compared.
    """
    found = {}
    async with runtime.unit_of_work() as uow:
        await uow.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        sites = set(
            (
                await uow.session.execute(
                    text("SELECT site_id FROM site WHERE departement = :d"), {"d": departement}
                )
            ).scalars()
        )
        for name, (rollup, base) in ROLLUP_VERSUS_BASE.items():
            rolled = {tuple(r) for r in await uow.session.execute(text(rollup)) if r[1] in sites}
            computed = {tuple(r) for r in await uow.session.execute(text(base)) if r[1] in sites}
            found[name] = (rolled, computed)
    return found


@pytest.mark.integration
async def test_rollups_equal_the_base_tables_under_duplicates_reorders_and_deletes(
    service_app: ServiceApp, history: Callable[[], Any], checks: Any
) -> None:
    scenario = history()
    # Events are applied in-process here; a live consumer would replay other tests' events
    # into the same tables, so this instance gets no reachable broker at all.
    async with service_app(PACKAGE, wait_ready=False, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9") as (
        app,
        _,
    ):
        runtime: Runtime = app.state.runtime
        await checks.apply_in_process(runtime, scenario.shuffled_with_duplicates(seed=5))
        first = await _rollups_and_bases(runtime, scenario.departement)
        for rolled, computed in first.values():
            assert rolled
            assert rolled == computed
        # Replaying everything in order changes nothing (idempotent).
        await checks.apply_in_process(runtime, scenario.events)
        assert await _rollups_and_bases(runtime, scenario.departement) == first

        # A session moved to another month and site, one deleted: their cells follow.
        async with runtime.unit_of_work() as uow:
            await uow.session.execute(
                text("""UPDATE session SET started_at = started_at - interval '40 days',
                                           site_id = 'elsewhere'
                        WHERE session_id = (SELECT min(session_id) FROM session
                                            WHERE act = 'teleconsultation'
                                              AND ended_at IS NOT NULL)""")
            )
            await uow.session.execute(
                text("""DELETE FROM session WHERE session_id = (SELECT max(session_id)
                        FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL)""")
            )
            await uow.session.execute(text("DELETE FROM expertise WHERE answered_at IS NOT NULL"))
            await uow.commit()
        moved = await _rollups_and_bases(runtime, scenario.departement)
        assert moved != first
        for rolled, computed in moved.values():
            assert rolled == computed


def test_a_period_splits_into_whole_paris_months_and_edges() -> None:
    # Midnight UTC is 01:00 in Paris in winter: January is not whole, February and March are.
    split = _split(
        Filters(since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC))
    )
    assert split.params["cells_first"] == date(2026, 2, 1)
    assert split.params["cells_last"] == date(2026, 4, 1)
    assert split.edges == [("cells_since", "cells_first_at"), ("cells_last_at", "cells_until")]

    within = _split(
        Filters(since=datetime(2026, 1, 5, tzinfo=UTC), until=datetime(2026, 1, 20, tzinfo=UTC))
    )
    assert within.months == "FALSE"
    assert within.edges == [("cells_since", "cells_until")]
    assert _split(Filters()).months == "TRUE"
    assert _split(Filters()).edges == []
