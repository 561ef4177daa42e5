"""The monthly and daily rollups equal the base tables, whatever the order, duplicates and
deletions; a period read through them equals the same period read from the base rows."""
# ruff: noqa: S608 - SQL assembled from constants.

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text

from maillage_common.events.envelope import Event
from maillage_common.runtime import Runtime
from maillage_devstack.pytest_plugin import ServiceApp
from maillage_statistics.db.indicators import (
    IndicatorQueries,
    _expertise_cells,
    _quality_cells,
    _site_activity_cells,
    _specialty_cells,
    _split,
    _teleconsultation_cells,
)
from maillage_statistics.db.rebuild import refresh_rollups
from maillage_statistics.domain.rules import PARIS, Filters
from maillage_statistics.handlers import project_event

PACKAGE = "maillage_statistics"
_MONTH = "coalesce(date_trunc('month', {0} AT TIME ZONE 'Europe/Paris')::date, '-infinity')"
_DAY = "({0} AT TIME ZONE 'Europe/Paris')::date"

_BUCKET = "CASE WHEN {0} <= 0 THEN -32768 ELSE floor(ln({0}::float8) / ln(1.05::float8))::int END"
# (table, instant, [(measure, condition, bucket)]): the quality measures, written out again.
_QUALITY = [
    ("session", "started_at", [("session_duration", "ended_at IS NOT NULL AND live_seconds "
                                "IS NOT NULL", _BUCKET.format("live_seconds"))]),
    ("session", "failed_at", [("failed_sessions", "failed_at IS NOT NULL AND ended_at IS NULL",
                               "0")]),
    ("appointment", "start_at", [
        ("appointments_booked", "booked_at IS NOT NULL", "0"),
        ("appointments_cancelled", "booked_at IS NOT NULL AND cancelled_at IS NOT NULL", "0"),
        ("appointments_fulfilled", "fulfilled_at IS NOT NULL", "0"),
        ("appointments_no_show", "no_show_at IS NOT NULL AND fulfilled_at IS NULL", "0")]),
    ("consultation", "requested_at", [
        ("time_to_accept", "accepted_at IS NOT NULL AND time_to_accept_seconds IS NOT NULL",
         _BUCKET.format("time_to_accept_seconds")),
        ("on_demand_expired", "expired_at IS NOT NULL AND accepted_at IS NULL", "0")]),
    ("expertise", "requested_at", [
        ("expertise_response", "answered_at IS NOT NULL AND response_seconds IS NOT NULL",
         _BUCKET.format("response_seconds")),
        ("expertises_answered", "answered_at IS NOT NULL", "0"),
        ("expertises_answered_in_time",
         "answered_at IS NOT NULL AND response_seconds <= requested_delay_seconds", "0")]),
]  # fmt: skip


def _base_quality(cell: str, *, dated: bool, where: str = "TRUE") -> str:
    """Quality counts per (cell, site, département, specialty, measure, bucket) from the base
    rows (rows without an instant only in month '-infinity'); `where` may use {instant}."""
    selects = []
    for table, instant, measures in _QUALITY:
        for measure, condition, bucket in measures:
            undated = dated and instant != "failed_at"
            selects.append(
                f"""SELECT {cell.format(instant)}, site_id, departement, specialty_code,
                           '{measure}', {bucket}, count(*)
                    FROM {table} WHERE {condition}
                          AND {"TRUE" if undated else f"{instant} IS NOT NULL"}
                          AND {where.format(instant=instant)}
                    GROUP BY 1, 2, 3, 4, 5, 6"""
            )
    return " UNION ALL ".join(selects)


def _base_site_activity(cell: str, *, dated: bool, where: str = "TRUE") -> str:
    """(cell, site, assisted, simple, expertises requested) from the base rows."""
    started = "TRUE" if dated else "started_at IS NOT NULL"
    return f"""SELECT cell, site_id, sum(a)::int, sum(s)::int, sum(e)::int FROM (
            SELECT {cell.format("started_at")} AS cell, site_id,
                   count(*) FILTER (WHERE assistance = 'assisted') AS a,
                   count(*) FILTER (WHERE assistance <> 'assisted') AS s, 0 AS e
            FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL AND {started}
                  AND {where.format(instant="started_at")}
            GROUP BY 1, 2
            UNION ALL
            SELECT {cell.format("requested_at")}, site_id, 0, 0, count(*)
            FROM expertise WHERE requested_at IS NOT NULL
                  AND {where.format(instant="requested_at")}
            GROUP BY 1, 2) x
        GROUP BY 1, 2"""


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
    # Rows without an instant have no day.
    "teleconsultation_day": (
        """SELECT day, site_id, departement, specialty_code, mode, assistance, sessions
           FROM teleconsultation_day""",
        f"""SELECT {_DAY.format("started_at")}, site_id, departement, specialty_code, mode,
                   assistance, count(*)
            FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL
                  AND started_at IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6""",
    ),
    "specialty_day": (
        "SELECT day, site_id, source, specialty_code, responder_id, acts FROM specialty_day",
        f"""SELECT {_DAY.format("started_at")}, site_id, 'teleconsultation', specialty_code,
                   responder_id, count(*)
            FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL
                  AND started_at IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT {_DAY.format("requested_at")}, site_id, 'expertise_requested',
                   specialty_code, '', count(*)
            FROM expertise WHERE requested_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT {_DAY.format("requested_at")}, site_id, 'expertise_answered',
                   specialty_code, responder_id, count(*)
            FROM expertise WHERE answered_at IS NOT NULL AND requested_at IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5""",
    ),
    **{
        f"expertise_{grain}": (
            f"""SELECT {grain}, site_id, departement, specialty_code, outcome, expertises
                FROM expertise_{grain}""",
            f"""SELECT {cell.format("requested_at")}, site_id, departement, specialty_code,
                       outcome, count(*)
                FROM expertise WHERE requested_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5""",
        )
        for grain, cell in (("month", _MONTH), ("day", _DAY))
    },
    **{
        f"site_activity_{grain}": (
            f"SELECT {grain}, site_id, assisted, simple, expertises FROM site_activity_{grain}",
            _base_site_activity(cell, dated=grain == "month"),
        )
        for grain, cell in (("month", _MONTH), ("day", _DAY))
    },
    **{
        f"quality_{grain}": (
            f"""SELECT {grain}, site_id, departement, specialty_code, measure, bucket, n
                FROM quality_{grain}""",
            _base_quality(cell, dated=grain == "month"),
        )
        for grain, cell in (("month", _MONTH), ("day", _DAY))
    },
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
    async with service_app(PACKAGE, **checks.without_broker) as (
        app,
        _,
    ):
        runtime: Runtime = app.state.runtime
        await checks.apply_in_process(runtime, scenario.shuffled_with_duplicates(seed=5))
        first = await _rollups_and_bases(runtime, scenario.departement)
        for rolled, computed in first.values():
            assert rolled
            assert rolled == computed
        await _assert_departement_quality(runtime, scenario.departement)
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
        await _assert_departement_quality(runtime, scenario.departement)

        # The rebuild's path: writes with the triggers deferred leave the rollups alone, and
        # one refresh recomputes them all from the base rows.
        async with runtime.unit_of_work() as uow:
            await uow.session.execute(text("SET LOCAL statistics.defer_rollups = 'on'"))
            await uow.session.execute(
                text("""DELETE FROM session WHERE session_id = (
                            SELECT min(session_id) FROM session
                            WHERE departement = :d AND act = 'teleconsultation'
                                  AND ended_at IS NOT NULL AND site_id <> 'elsewhere')"""),
                {"d": scenario.departement},
            )
            await uow.commit()
        assert await _rollups_and_bases(runtime, scenario.departement) != moved
        async with runtime.unit_of_work() as uow:
            await uow.session.execute(text("SELECT statistics_refresh_rollups()"))
            await uow.commit()
        refreshed = await _rollups_and_bases(runtime, scenario.departement)
        for name, (rolled, computed) in refreshed.items():
            assert rolled == computed, name
        await _assert_departement_quality(runtime, scenario.departement)
        presence = await _presence(runtime)

        # The rebuild's refresh in lanes (month and day side by side) gives the same rows...
        await refresh_rollups(runtime.sessions, work_mem="16MB")
        assert await _rollups_and_bases(runtime, scenario.departement) == refreshed
        assert await _presence(runtime) == presence
        # ...and does recompute them: after another deferred change, they follow the bases.
        async with runtime.unit_of_work() as uow:
            await uow.session.execute(text("SET LOCAL statistics.defer_rollups = 'on'"))
            await uow.session.execute(
                text("DELETE FROM expertise WHERE site_id IN (SELECT site_id FROM site "
                     "WHERE departement = :d)"),
                {"d": scenario.departement},
            )  # fmt: skip
            await uow.session.execute(
                text("""UPDATE session SET started_at = started_at + interval '1 day'
                        WHERE departement = :d AND act = 'teleconsultation'"""),
                {"d": scenario.departement},
            )
            await uow.commit()
        assert await _rollups_and_bases(runtime, scenario.departement) != refreshed
        await refresh_rollups(runtime.sessions, work_mem="16MB")
        for name, (rolled, computed) in (
            await _rollups_and_bases(runtime, scenario.departement)
        ).items():
            assert rolled == computed, name
        await _assert_departement_quality(runtime, scenario.departement)
        assert await _presence(runtime) != presence


async def _presence(runtime: Runtime) -> set[tuple[Any, ...]]:
    async with runtime.unit_of_work() as uow:
        rows = await uow.session.execute(
            text("SELECT kind, specialty_code, who, days::text FROM specialty_presence")
        )
        return {tuple(row) for row in rows}


async def _assert_departement_quality(runtime: Runtime, departement: str) -> None:
    """Each `<rollup>_departement_*` = its per-site cells summed over the département's sites."""
    rollups = {
        "quality": ("specialty_code, measure, bucket", "n"),
        "teleconsultation": ("specialty_code, mode, assistance", "sessions"),
        "expertise": ("specialty_code, outcome", "expertises"),
    }
    seen = 0
    async with runtime.unit_of_work() as uow:
        for rollup, (keys, value) in rollups.items():
            for grain in ("month", "day"):
                rolled = await uow.session.execute(
                    text(f"""SELECT {grain}, {keys}, {value}
                             FROM {rollup}_departement_{grain} WHERE departement = :d"""),
                    {"d": departement},
                )
                summed = await uow.session.execute(
                    text(f"""SELECT {grain}, {keys}, sum({value})
                             FROM {rollup}_{grain} WHERE departement = :d
                             GROUP BY {grain}, {keys}"""),
                    {"d": departement},
                )
                found = {tuple(r) for r in rolled}
                seen += len(found)
                assert found == {tuple(r) for r in summed}, (rollup, grain)
    assert seen


def test_a_period_splits_into_whole_months_whole_days_and_partial_days() -> None:
    # Midnight UTC is 01:00 in Paris in winter, 02:00 in summer (from 29 March 2026).
    split = _split(
        Filters(since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC))
    )
    assert split.params["cells_first_month"] == date(2026, 2, 1)
    assert split.params["cells_last_month"] == date(2026, 4, 1)
    # 1 Jan 01:00 -> 2 Jan from the base rows; 2-31 Jan from the days; Feb-Mar from the months;
    # 1 Apr 00:00 -> 02:00 Paris from the base rows.
    assert split.days == [(1, "cells_first_day", "cells_first_month")]
    assert split.params["cells_first_day"] == date(2026, 1, 2)
    assert split.edges == [
        (1, "cells_since", "cells_first_at"),
        (1, "cells_last_at", "cells_until"),
    ]

    aligned = _split(
        Filters(
            since=datetime(2026, 1, 31, 23, tzinfo=UTC), until=datetime(2026, 3, 31, 22, tzinfo=UTC)
        )
    )
    assert (aligned.days, aligned.edges) == ([], [])
    assert aligned.months.count(":cells_") == 2

    within = _split(
        Filters(since=datetime(2026, 1, 5, tzinfo=UTC), until=datetime(2026, 1, 20, tzinfo=UTC))
    )
    assert within.months == "FALSE"
    assert within.days == [(1, "cells_first_day", "cells_last_day")]
    assert within.edges == [
        (1, "cells_since", "cells_first_at"),
        (1, "cells_last_at", "cells_until"),
    ]

    same_day = _split(
        Filters(
            since=datetime(2026, 1, 5, 9, tzinfo=UTC), until=datetime(2026, 1, 5, 17, tzinfo=UTC)
        )
    )
    assert (same_day.months, same_day.days) == ("FALSE", [])
    assert same_day.edges == [(1, "cells_since", "cells_until")]
    assert _split(Filters()).months == "TRUE"
    assert (_split(Filters()).days, _split(Filters()).edges) == ([], [])


def test_a_signed_split_reads_each_end_from_the_nearest_midnight_and_month() -> None:
    # 1 Jan 01:00 Paris -> 1 Apr 02:00 Paris: January whole minus 1 Jan 00:00-01:00 (base
    # rows), Jan-Mar from the months, plus 1 Apr 00:00-02:00 (base rows). No daily rows.
    split = _split(
        Filters(since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 4, 1, tzinfo=UTC)),
        signed=True,
    )
    assert split.params["cells_first_month"] == date(2026, 1, 1)
    assert split.params["cells_last_month"] == date(2026, 4, 1)
    assert split.days == []
    assert split.edges == [
        (-1, "cells_first_at", "cells_since"),
        (1, "cells_last_at", "cells_until"),
    ]
    assert split.params["cells_first_at"] == datetime(2026, 1, 1, tzinfo=PARIS)

    # 3 Feb 00:00 -> 27 Mar 00:00 Paris: February minus its first two days, March minus its
    # last five (26-31 March: Paris midnight of the 27th is 23:00 UTC on the 26th).
    late = _split(
        Filters(
            since=datetime(2026, 2, 2, 23, tzinfo=UTC), until=datetime(2026, 3, 26, 23, tzinfo=UTC)
        ),
        signed=True,
    )
    assert (late.params["cells_first_month"], late.params["cells_last_month"]) == (
        date(2026, 2, 1),
        date(2026, 4, 1),
    )
    assert late.days == [
        (-1, "cells_first_month", "cells_first_day"),
        (-1, "cells_last_day", "cells_last_month"),
    ]
    assert late.edges == []

    # Ten days in mid-month: the daily rows, not a month minus twenty days.
    mid = _split(
        Filters(
            since=datetime(2026, 2, 9, 23, tzinfo=UTC), until=datetime(2026, 2, 19, 23, tzinfo=UTC)
        ),
        signed=True,
    )
    assert (mid.months, mid.days) == ("FALSE", [(1, "cells_first_day", "cells_last_day")])

    # An hour: the base rows, not a day minus twenty-three hours.
    hour = Filters(
        since=datetime(2026, 2, 9, 11, tzinfo=UTC), until=datetime(2026, 2, 9, 12, tzinfo=UTC)
    )
    assert _split(hour, signed=True).edges == [(1, "cells_since", "cells_until")]


def _at(day: int, month: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


PERIODS = [
    (_at(1, 1), _at(1, 4)),
    (_at(31, 12, 23, year=2025), _at(31, 3, 22)),  # Paris midnights: months only
    (_at(15, 1, 13, 37), _at(3, 3, 7)),
    (_at(2, 2, 5), _at(20, 2, 18)),  # inside one month
    (_at(8, 3, 9), _at(8, 3, 20)),  # inside one day
    (_at(5, 1, 9, 30), _at(6, 1, 10, 30)),  # no whole Paris day
    (_at(28, 3, 23), _at(30, 3, 1)),  # across the change to summer time
    (None, _at(14, 2, 11)),
    (_at(14, 2, 11), None),
    # Read by sums as rollups minus what overshoots: 5 Jan 00:00-11:30 Paris (a session at
    # 11:00), 1-4 Jan, and 20-31 Mar (a no-show on the 20th) are subtracted.
    (_at(5, 1, 10, 30), _at(19, 3, 23)),
    (_at(6, 2, 23), _at(26, 2, 11)),
]

_BASE_TELECONSULTATIONS = f"""
    SELECT {_MONTH.format("started_at")}, site_id, departement, specialty_code, mode,
           assistance, count(*)
    FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL
          AND departement = :departement AND {{period}}
    GROUP BY 1, 2, 3, 4, 5, 6"""
_BASE_ACTS = """
    SELECT site_id, 'teleconsultation', specialty_code, responder_id, count(*)
    FROM session WHERE act = 'teleconsultation' AND ended_at IS NOT NULL
          AND departement = :departement AND {started}
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT site_id, 'expertise_requested', specialty_code, '', count(*)
    FROM expertise WHERE requested_at IS NOT NULL AND departement = :departement AND {requested}
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT site_id, 'expertise_answered', specialty_code, responder_id, count(*)
    FROM expertise WHERE answered_at IS NOT NULL AND departement = :departement AND {requested}
    GROUP BY 1, 2, 3, 4"""
_BASE_EXPERTISES = """
    SELECT site_id, departement, specialty_code, outcome, count(*)
    FROM expertise WHERE departement = :departement AND {requested}
    GROUP BY 1, 2, 3, 4"""


def _without(found: Counter[tuple[Any, ...]], column: int) -> Counter[tuple[Any, ...]]:
    """The counts summed over every value of `column` (the site)."""
    summed: Counter[tuple[Any, ...]] = Counter()
    for key, n in found.items():
        summed[key[:column] + key[column + 1 :]] += n
    return summed


async def _per_departement(
    rows: Any, cells_of: Any, filters: Filters, departement: dict[str, str], *, drop_site: int
) -> Counter[tuple[Any, ...]]:
    """The period's cells read from the per-département rollups, without their site column."""
    cells, params = cells_of(filters, by_site=False)
    found: Counter[tuple[Any, ...]] = await rows(
        f"SELECT * FROM ({cells}) c WHERE c.departement = :departement",
        {**params, **departement},
    )
    return _without(found, drop_site)


def _period(column: str, since: datetime | None, until: datetime | None) -> str:
    bounds = [f"{column} >= :since" if since else "", f"{column} < :until" if until else ""]
    return " AND ".join(bound for bound in bounds if bound) or "TRUE"


@pytest.mark.integration
async def test_any_period_read_through_the_rollups_equals_the_base_rows(
    service_app: ServiceApp, history: Callable[[], Any], checks: Any
) -> None:
    scenario = history()
    async with service_app(PACKAGE, **checks.without_broker) as (
        app,
        _,
    ):
        runtime: Runtime = app.state.runtime
        await checks.apply_in_process(runtime, scenario.shuffled_with_duplicates(seed=11))
        departement = {"departement": scenario.departement}
        async with runtime.unit_of_work() as uow:
            # Teleconsultations at a site that is no longer operational: one by a responder
            # who also acted elsewhere, one by a responder who acted only there (neither
            # counts that site; only the first responder counts, for the other sites).
            await uow.session.execute(
                text("""INSERT INTO session (session_id, site_id, responder_id, specialty_code,
                                             act, departement, started_at, ended_at)
                        SELECT 'closed-' || n, st.site_id, r.responder_id, 'SM54',
                               'teleconsultation', st.departement, at, at + interval '15 min'
                        FROM site st,
                             (SELECT min(responder_id) AS responder_id FROM session
                              WHERE departement = :departement AND specialty_code = 'SM54'
                                    AND responder_id <> ''
                              UNION ALL SELECT 'only-there-' || :departement) r,
                             LATERAL (VALUES (1, timestamptz '2026-02-10 10:00Z'),
                                             (2, timestamptz '2026-02-10 10:00Z')) v(n, at)
                        WHERE st.departement = :departement AND NOT st.active
                              AND (n = 1) = (r.responder_id NOT LIKE 'only-there-%')"""),
                departement,
            )
            await uow.commit()
        async with runtime.unit_of_work() as uow:

            async def rows(sql: str, params: dict[str, Any]) -> Counter[tuple[Any, ...]]:
                found: Counter[tuple[Any, ...]] = Counter()
                for row in await uow.session.execute(text(sql), params):
                    found[tuple(row[:-1])] += row[-1]
                return found

            await uow.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            seen_rows = probed_specialties = seen_quality = 0
            for since, until in PERIODS:
                filters = Filters(since=since, until=until)
                bounds = {k: v for k, v in (("since", since), ("until", until)) if v}
                cells, params = _teleconsultation_cells(filters)
                rolled = await rows(
                    f"SELECT * FROM ({cells}) c WHERE c.departement = :departement",
                    {**params, **departement},
                )
                base = await rows(
                    _BASE_TELECONSULTATIONS.format(period=_period("started_at", since, until)),
                    {**bounds, **departement},
                )
                assert rolled == base, (since, until)
                assert await _per_departement(
                    rows, _teleconsultation_cells, filters, departement, drop_site=1
                ) == _without(rolled, 1), (since, until)
                sources = ("teleconsultation", "expertise_requested", "expertise_answered")
                cells, params = _specialty_cells(filters, *sources)
                rolled = await rows(
                    f"""SELECT c.* FROM ({cells}) c JOIN site st USING (site_id)
                        WHERE st.departement = :departement""",
                    {**params, **departement},
                )
                base = await rows(
                    _BASE_ACTS.format(
                        started=_period("started_at", since, until),
                        requested=_period("requested_at", since, until),
                    ),
                    {**bounds, **departement},
                )
                assert rolled == base, (since, until)
                seen_rows += len(base)
                cells, params = _expertise_cells(filters)
                rolled = await rows(
                    f"SELECT * FROM ({cells}) c WHERE c.departement = :departement",
                    {**params, **departement},
                )
                base = await rows(
                    _BASE_EXPERTISES.format(requested=_period("requested_at", since, until)),
                    {**bounds, **departement},
                )
                assert rolled == base, (since, until)
                assert await _per_departement(
                    rows, _expertise_cells, filters, departement, drop_site=0
                ) == _without(rolled, 0), (since, until)
                cells, params = _quality_cells(filters)
                rolled = await rows(
                    f"SELECT * FROM ({cells}) c WHERE c.departement = :departement",
                    {**params, **departement},
                )
                cells, params = _quality_cells(filters, by_site=False)
                by_departement = await rows(
                    f"""SELECT c.departement, c.specialty_code, c.measure, c.bucket, sum(c.n)
                        FROM ({cells}) c WHERE c.departement = :departement
                        GROUP BY 1, 2, 3, 4""",
                    {**params, **departement},
                )
                rolled_by_departement: Counter[tuple[Any, ...]] = Counter()
                for key, n in rolled.items():
                    rolled_by_departement[key[1:]] += n
                assert by_departement == rolled_by_departement, (since, until)
                quality = _base_quality(
                    _MONTH,
                    dated=since is None and until is None,
                    where=_period("{instant}", since, until) + " AND departement = :departement",
                )
                base = await rows(
                    f"""SELECT site_id, departement, specialty_code, measure, bucket, n
                        FROM ({quality})
                        AS b(cell, site_id, departement, specialty_code, measure, bucket, n)""",
                    {**bounds, **departement},
                )
                assert rolled == base, (since, until)
                seen_quality += len(base)
                cells, params = _site_activity_cells(filters)
                scenario_sites = "SELECT site_id FROM site WHERE departement = :departement"
                activity = await uow.session.execute(
                    text(f"""SELECT site_id, sum(assisted), sum(simple), sum(expertises)
                             FROM ({cells}) c WHERE site_id IN ({scenario_sites})
                             GROUP BY 1 HAVING sum(assisted) <> 0 OR sum(simple) <> 0
                                               OR sum(expertises) <> 0"""),
                    {**params, **departement},
                )
                activity_base = await uow.session.execute(
                    text(f"""SELECT site_id, sum(a), sum(s), sum(e) FROM ({
                        _base_site_activity(
                            _MONTH, dated=True, where=_period("{instant}", since, until)
                        )
                    }) b(cell, site_id, a, s, e) WHERE site_id IN ({scenario_sites})
                    GROUP BY 1"""),
                    {**bounds, **departement},
                )
                assert {tuple(r) for r in activity} == {tuple(r) for r in activity_base}
                # Both plans of `specialties` give one answer, region-wide (every test's
                # sites, one snapshot) and on this scenario's territory.
                queries = IndicatorQueries(uow.session)
                for scoped in (
                    filters,
                    replace(filters, specialty="SM54"),
                    replace(filters, departement=scenario.departement),
                ):
                    by_probes = await queries.specialties(scoped, probe=True)
                    by_fold = await queries.specialties(scoped, probe=False)
                    assert by_probes == by_fold, scoped
                    probed_specialties += len(by_probes)
            assert seen_rows  # the periods do cover activity
            assert probed_specialties
            assert seen_quality


@pytest.mark.integration
async def test_a_hand_fulfilled_appointment_and_its_session_folded_at_once_count_once(
    service_app: ServiceApp, checks: Any
) -> None:
    async with service_app(PACKAGE, **checks.without_broker) as (
        app,
        _,
    ):
        runtime: Runtime = app.state.runtime

        async def fold(event: Event[Any]) -> None:
            async with runtime.unit_of_work() as uow:
                await project_event(event, uow)
                await uow.commit()

        async def teleconsultations(appointment: str) -> list[str]:
            async with runtime.unit_of_work() as uow:
                rows = await uow.session.execute(
                    text("""SELECT session_id FROM session
                            WHERE (appointment_id = :id OR session_id = 'appointment:' || :id)
                                  AND act = 'teleconsultation' AND ended_at IS NOT NULL"""),
                    {"id": appointment},
                )
                return [row[0] for row in rows]

        alone, fulfilled_alone, _ = checks.hand_fulfilled_and_its_session()
        await fold(fulfilled_alone)
        # No session names it: the appointment itself is the teleconsultation.
        assert await teleconsultations(alone) == [f"appointment:{alone}"]

        for first_index in (0, 1):
            appointment, *events = checks.hand_fulfilled_and_its_session()
            first, second = events[first_index], events[1 - first_index]
            # The booking and the session topics are folded by two transactions at once: the
            # second waits for the first's lock on the appointment, then sees what it wrote.
            async with runtime.unit_of_work() as uow:
                await project_event(first, uow)
                folding = asyncio.create_task(fold(second))
                await asyncio.sleep(0.3)
                assert not folding.done()  # waiting on the appointment's lock
                await uow.commit()
            await folding
            found = await teleconsultations(appointment)
            assert len(found) == 1, (first.type, found)
            assert not found[0].startswith("appointment:")  # the session is the one counted
