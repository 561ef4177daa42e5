# ruff: noqa: S608 - SQL is assembled from constants and column names; values are bound.
"""Indicator queries over the projections (read-only; the rules live in `domain.rules`).

A teleconsultation is a session of act `teleconsultation` that ended normally (SessionEnded),
dated by its start; an appointment fulfilled by hand that no ended session names is one too
(kept as a `session` row, migration 0007). A site is operational while its latest directory
snapshot is active. Months are calendar months in Europe/Paris.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import QueuePool

from maillage_statistics.domain.rules import (
    HISTOGRAM_RATIO,
    PARIS,
    TIME_ZONE,
    ZERO_BUCKET,
    Filters,
    histogram_percentile,
    next_month,
    paris_midnight,
)

Row = dict[str, Any]


@dataclass
class _Where:
    """A WHERE clause built from the filters, with its bound parameters."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


def _activity_where(filters: Filters, alias: str, instant: str) -> _Where:
    """Filters for an activity table (session, expertise, ...) joined to `site st`."""
    where = _Where()
    if filters.since is not None:
        where.add(f"{alias}.{instant} >= :since", since=filters.since)
    if filters.until is not None:
        where.add(f"{alias}.{instant} < :until", until=filters.until)
    if filters.departement:
        where.add(f"{alias}.departement = :departement", departement=filters.departement)
    if filters.specialty:
        where.add(f"{alias}.specialty_code = :specialty", specialty=filters.specialty)
    _site_attributes(filters, where)
    return where


def _site_attributes(filters: Filters, where: _Where) -> None:
    if filters.site_category:
        where.add("st.category = :category", category=filters.site_category)
    if filters.deployment_model:
        where.add("st.deployment_model = :deployment", deployment=filters.deployment_model)


def _site_where(filters: Filters) -> _Where:
    where = _Where()
    where.add("st.active")
    if filters.departement:
        where.add("st.departement = :departement", departement=filters.departement)
    _site_attributes(filters, where)
    return where


def _join_site(filters: Filters, alias: str) -> str:
    # The join only matters when a site attribute filters; skip it otherwise (faster).
    if filters.site_category or filters.deployment_model:
        return f"JOIN site st ON st.site_id = {alias}.site_id"
    return ""


_TELECONSULTATION = "s.act = 'teleconsultation' AND s.ended_at IS NOT NULL"


@dataclass
class _Split:
    """A period as pieces that add up to it: whole Paris months (monthly rollups), ranges of
    whole Paris days (daily rollups) and ranges of instants (base rows). A piece of sign -1
    is subtracted: it overshoots the period."""

    months: str
    days: list[tuple[int, str, str]]
    edges: list[tuple[int, str, str]]
    params: dict[str, Any]

    def days_on(self, column: str) -> list[tuple[int, str]]:
        return [(sign, f"{column} >= :{lo} AND {column} < :{hi}") for sign, lo, hi in self.days]

    def edges_on(self, instant: str) -> list[tuple[int, str]]:
        # One range per query branch: an OR of ranges defeats the index-only scans.
        return [(sign, f"{instant} >= :{lo} AND {instant} < :{hi}") for sign, lo, hi in self.edges]


def _signed(sign: int, amount: str) -> str:
    return amount if sign > 0 else f"-({amount})"


def _day_anchor(instant: datetime, *, lower: bool, nearest: bool) -> date:
    """The Paris midnight a period's end is read from: the nearer one if `nearest` (the hours
    between are base rows, added or subtracted), else the one inside the period."""
    floor = instant.astimezone(PARIS).date()
    if paris_midnight(floor) == instant:
        return floor
    ceiling = floor + timedelta(days=1)
    if nearest:
        return (
            floor
            if instant - paris_midnight(floor) <= paris_midnight(ceiling) - instant
            else ceiling
        )
    return ceiling if lower else floor


def _month_anchor(day: date, *, lower: bool, nearest: bool) -> date:
    """The month start a period's end is read from: the nearer one if `nearest` (the days
    between are daily rows, added or subtracted), else the one inside the period."""
    floor = day.replace(day=1)
    if floor == day:
        return floor
    ceiling = next_month(floor)
    if nearest:
        return floor if (day - floor).days <= (ceiling - day).days else ceiling
    return ceiling if lower else floor


def _between(params: dict[str, Any], start: str, end: str) -> list[tuple[int, str, str]]:
    """The rows from bound `start` to bound `end` (both named in `params`): added when
    `start` comes first, subtracted when `end` does, none when they are equal."""
    if params[start] < params[end]:
        return [(1, start, end)]
    if params[end] < params[start]:
        return [(-1, end, start)]
    return []


def _split(filters: Filters, *, signed: bool = False) -> _Split:
    """The period's pieces. Unsigned, every piece lies inside the period: for reads that ask
    whether something happened. Signed, for sums: each end is read from its nearest midnight
    and month start, subtracting what overshoots, so a period starting at 02:00 on the 1st
    reads its first month from one monthly row minus two hours of base rows, instead of
    thirty daily rows plus twenty-two hours of base rows."""
    since, until = filters.since, filters.until
    if since is None and until is None:
        return _Split("TRUE", [], [], {})
    params: dict[str, Any] = {
        key: value for key, value in (("cells_since", since), ("cells_until", until)) if value
    }
    first_day = _day_anchor(since, lower=True, nearest=signed) if since else None
    last_day = _day_anchor(until, lower=False, nearest=signed) if until else None
    if since is not None and until is not None and first_day is not None and last_day is not None:
        overshoot = abs(since - paris_midnight(first_day)) + abs(until - paris_midnight(last_day))
        if first_day >= last_day or (signed and overshoot >= until - since):
            # No whole Paris day inside (or the base rows are cheaper read directly).
            return _Split("FALSE", [], [(1, "cells_since", "cells_until")], params)
    edges: list[tuple[int, str, str]] = []
    if since is not None and first_day is not None:
        params["cells_first_at"] = paris_midnight(first_day)
        edges += _between(params, "cells_since", "cells_first_at")
    if until is not None and last_day is not None:
        params["cells_last_at"] = paris_midnight(last_day)
        edges += _between(params, "cells_last_at", "cells_until")

    first_month = _month_anchor(first_day, lower=True, nearest=signed) if first_day else None
    last_month = _month_anchor(last_day, lower=False, nearest=signed) if last_day else None
    params.update(
        {
            key: value
            for key, value in (
                ("cells_first_day", first_day),
                ("cells_last_day", last_day),
                ("cells_first_month", first_month),
                ("cells_last_month", last_month),
            )
            if value
        }
    )
    if first_day is not None and last_day is not None and first_month and last_month:
        overshoot_days = abs((first_day - first_month).days) + abs((last_day - last_month).days)
        if first_month >= last_month or (signed and overshoot_days >= (last_day - first_day).days):
            # No whole month inside (or the daily rows are cheaper read directly).
            return _Split("FALSE", [(1, "cells_first_day", "cells_last_day")], edges, params)
    # Rows without an instant (month '-infinity') are in no bounded period, as in the base.
    months = ["r.month > '-infinity'::date"]
    days: list[tuple[int, str, str]] = []
    if first_day is not None and first_month is not None:
        months.append("r.month >= :cells_first_month")
        days += _between(params, "cells_first_day", "cells_first_month")
    if last_day is not None and last_month is not None:
        months.append("r.month < :cells_last_month")
        days += _between(params, "cells_last_month", "cells_last_day")
    return _Split(" AND ".join(months), days, edges, params)


def _teleconsultation_cells(
    filters: Filters, *, by_site: bool = True
) -> tuple[str, dict[str, Any]]:
    """Rows (month, site_id, departement, specialty_code, mode, assistance, sessions); without
    `by_site`, the month and day cells are the département's (site_id ''). Signed: sum them."""
    split = _split(filters, signed=True)
    site, table = ("r.site_id", "teleconsultation")
    if not by_site:
        site, table = ("''::varchar", "teleconsultation_departement")
    sql = f"""SELECT r.month, {site}, r.departement, r.specialty_code, r.mode, r.assistance,
                     r.sessions
              FROM {table}_month r WHERE {split.months}"""
    for sign, days in split.days_on("r.day"):
        sql += f""" UNION ALL
            SELECT date_trunc('month', r.day::timestamp)::date, {site}, r.departement,
                   r.specialty_code, r.mode, r.assistance, {_signed(sign, "r.sessions")}
            FROM {table}_day r WHERE {days}"""
    for sign, edge in split.edges_on("s.started_at"):
        sql += f""" UNION ALL
            SELECT date_trunc('month', s.started_at AT TIME ZONE '{TIME_ZONE}')::date,
                   s.site_id, s.departement, s.specialty_code, s.mode, s.assistance,
                   {_signed(sign, "count(*)::int")}
            FROM session s WHERE {_TELECONSULTATION} AND {edge}
            GROUP BY 1, 2, 3, 4, 5, 6"""
    return sql, split.params


def _expertise_cells(filters: Filters, *, by_site: bool = True) -> tuple[str, dict[str, Any]]:
    """Rows (site_id, departement, specialty_code, outcome, expertises) by request instant;
    without `by_site`, the month and day cells are the département's (site_id ''). Signed: sum
    them."""
    split = _split(filters, signed=True)
    columns = "r.site_id, r.departement, r.specialty_code, r.outcome"
    table = "expertise"
    if not by_site:
        columns, table = columns.replace("r.site_id", "''::varchar"), "expertise_departement"
    sql = f"SELECT {columns}, r.expertises FROM {table}_month r WHERE {split.months}"
    for sign, days in split.days_on("r.day"):
        sql += f""" UNION ALL SELECT {columns}, {_signed(sign, "r.expertises")}
                    FROM {table}_day r WHERE {days}"""
    for sign, edge in split.edges_on("e.requested_at"):
        sql += f""" UNION ALL
            SELECT e.site_id, e.departement, e.specialty_code, e.outcome,
                   {_signed(sign, "count(*)::int")}
            FROM expertise e WHERE {edge} GROUP BY 1, 2, 3, 4"""
    return sql, split.params


def _specialty_cells(
    filters: Filters, *sources: str, sites: str = "TRUE"
) -> tuple[str, dict[str, Any]]:
    """Rows (site_id, source, specialty_code, responder_id, acts) of these sources; `sites`
    may restrict the month and day cells to some sites (`r.site_id`), read by site. Unsigned:
    every row lies inside the period (which sites and responders acted is read from them)."""
    split = _split(filters)
    wanted = ", ".join(f"'{source}'" for source in sources)
    sql = f"""SELECT r.site_id, r.source, r.specialty_code, r.responder_id, r.acts
              FROM specialty_month r
              WHERE r.source IN ({wanted}) AND {split.months} AND {sites}"""
    for _, days in split.days_on("r.day"):
        sql += f""" UNION ALL
            SELECT r.site_id, r.source, r.specialty_code, r.responder_id, r.acts
            FROM specialty_day r WHERE r.source IN ({wanted}) AND {days} AND {sites}"""
    for edge in _specialty_edges(split, *sources):
        sql += f" UNION ALL {edge}"
    return sql, split.params


def _specialty_edges(split: _Split, *sources: str) -> list[str]:
    """Base-row cells (site_id, source, specialty_code, responder_id, acts) of the partial
    first/last days of the period, one SELECT per edge and table."""
    wanted = ", ".join(f"'{source}'" for source in sources)
    selects = []
    if "teleconsultation" in sources:
        selects += [
            f"""SELECT s.site_id, 'teleconsultation', s.specialty_code, s.responder_id,
                       count(*)::int
                FROM session s WHERE {_TELECONSULTATION} AND {edge}
                GROUP BY 1, 2, 3, 4"""
            for _, edge in split.edges_on("s.started_at")
        ]
    if any(source.startswith("expertise") for source in sources):
        selects += [
            f"""SELECT * FROM (
                SELECT e.site_id, f.source, e.specialty_code,
                       CASE WHEN f.source = 'expertise_answered' THEN e.responder_id ELSE '' END,
                       count(*)::int
                FROM expertise e CROSS JOIN LATERAL (VALUES
                    (CASE WHEN e.requested_at IS NOT NULL THEN 'expertise_requested' END),
                    (CASE WHEN e.answered_at IS NOT NULL THEN 'expertise_answered' END))
                    AS f(source)
                WHERE f.source IS NOT NULL AND {edge}
                GROUP BY 1, 2, 3, 4) b WHERE b.source IN ({wanted})"""
            for _, edge in split.edges_on("e.requested_at")
        ]
    return selects


# Service quality (`quality` rollups, migration 0005): per base table and instant, the measures a
# row adds to (the same conditions and buckets as the triggers, for the partial days).
def _bucket_sql(value: str) -> str:
    return (
        f"CASE WHEN {value} <= 0 THEN {ZERO_BUCKET} "
        f"ELSE floor(ln({value}::float8) / ln({HISTOGRAM_RATIO}::float8))::int END"
    )


_QUALITY_SOURCES: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    (
        "session",
        "started_at",
        [
            (
                "session_duration",
                "s.ended_at IS NOT NULL AND s.live_seconds IS NOT NULL",
                _bucket_sql("s.live_seconds"),
            )
        ],
    ),
    ("session", "failed_at", [("failed_sessions", "s.ended_at IS NULL", "0")]),
    (
        "appointment",
        "start_at",
        [
            ("appointments_booked", "s.booked_at IS NOT NULL", "0"),
            (
                "appointments_cancelled",
                "s.booked_at IS NOT NULL AND s.cancelled_at IS NOT NULL",
                "0",
            ),
            ("appointments_fulfilled", "s.fulfilled_at IS NOT NULL", "0"),
            ("appointments_no_show", "s.no_show_at IS NOT NULL AND s.fulfilled_at IS NULL", "0"),
        ],
    ),
    (
        "consultation",
        "requested_at",
        [
            (
                "time_to_accept",
                "s.accepted_at IS NOT NULL AND s.time_to_accept_seconds IS NOT NULL",
                _bucket_sql("s.time_to_accept_seconds"),
            ),
            ("on_demand_expired", "s.expired_at IS NOT NULL AND s.accepted_at IS NULL", "0"),
        ],
    ),
    (
        "expertise",
        "requested_at",
        [
            (
                "expertise_response",
                "s.answered_at IS NOT NULL AND s.response_seconds IS NOT NULL",
                _bucket_sql("s.response_seconds"),
            ),
            ("expertises_answered", "s.answered_at IS NOT NULL", "0"),
            (
                "expertises_answered_in_time",
                "s.answered_at IS NOT NULL AND s.response_seconds <= s.requested_delay_seconds",
                "0",
            ),
        ],
    ),
]
QUALITY_HISTOGRAMS: dict[str, tuple[tuple[str, float], ...]] = {
    "time_to_accept": (("p50", 0.5), ("p90", 0.9)),
    "session_duration": (("p50", 0.5), ("p90", 0.9)),
    "expertise_response": (("p50", 0.5),),
}
QUALITY_COUNTS = (
    "on_demand_expired",
    "appointments_booked",
    "appointments_cancelled",
    "appointments_fulfilled",
    "appointments_no_show",
    "failed_sessions",
    "expertises_answered",
    "expertises_answered_in_time",
)


def _quality_cells(filters: Filters, *, by_site: bool = True) -> tuple[str, dict[str, Any]]:
    """Rows (site_id, departement, specialty_code, measure, bucket, n) of the period; without
    `by_site`, the month and day cells are the département's (site_id ''). Signed: sum them."""
    split = _split(filters, signed=True)
    columns = "r.site_id, r.departement, r.specialty_code, r.measure, r.bucket"
    table = "quality"
    if not by_site:
        columns = columns.replace("r.site_id", "''::varchar")
        table = "quality_departement"
    sql = f"SELECT {columns}, r.n FROM {table}_month r WHERE {split.months}"
    for sign, days in split.days_on("r.day"):
        sql += f""" UNION ALL SELECT {columns}, {_signed(sign, "r.n")}
                    FROM {table}_day r WHERE {days}"""
    for table, instant, measures in _QUALITY_SOURCES:
        values = ", ".join(
            f"(CASE WHEN {condition} THEN '{measure}' END, {bucket})"
            for measure, condition, bucket in measures
        )
        for sign, edge in split.edges_on(f"s.{instant}"):
            sql += f""" UNION ALL
                SELECT s.site_id, s.departement, s.specialty_code, m.measure, m.bucket,
                       {_signed(sign, "count(*)::int")}
                FROM {table} s CROSS JOIN LATERAL (VALUES {values}) AS m(measure, bucket)
                WHERE m.measure IS NOT NULL AND {edge}
                GROUP BY 1, 2, 3, 4, 5"""
    return sql, split.params


def _site_activity_cells(filters: Filters, sites: str = "TRUE") -> tuple[str, dict[str, Any]]:
    """Rows (site_id, assisted, simple, expertises) of the period, every specialty; `sites`
    may restrict the month and day cells to some sites (`r.site_id`). Signed: sum them."""
    split = _split(filters, signed=True)
    sql = f"""SELECT r.site_id, r.assisted, r.simple, r.expertises
              FROM site_activity_month r WHERE {split.months} AND {sites}"""
    for sign, days in split.days_on("r.day"):
        amounts = ", ".join(_signed(sign, f"r.{a}") for a in ("assisted", "simple", "expertises"))
        sql += f""" UNION ALL SELECT r.site_id, {amounts}
                    FROM site_activity_day r WHERE {days} AND {sites}"""
    for sign, edge in split.edges_on("s.started_at"):
        assisted = _signed(sign, "(count(*) FILTER (WHERE s.assistance = 'assisted'))::int")
        simple = _signed(sign, "(count(*) FILTER (WHERE s.assistance <> 'assisted'))::int")
        sql += f""" UNION ALL
            SELECT s.site_id, {assisted}, {simple}, 0
            FROM session s WHERE {_TELECONSULTATION} AND {edge} GROUP BY 1"""
    for sign, edge in split.edges_on("e.requested_at"):
        sql += f""" UNION ALL
            SELECT e.site_id, 0, 0, {_signed(sign, "count(*)::int")}
            FROM expertise e WHERE {edge} GROUP BY 1"""
    return sql, split.params


def _by_site(filters: Filters) -> bool:
    """Whether the cells must be read per site (a site attribute filters); otherwise the
    per-département rollups hold the same sums in far fewer rows."""
    return bool(filters.site_category or filters.deployment_model)


def _unbounded(filters: Filters) -> Filters:
    """The filters without their period (the cells carry it)."""
    return replace(filters, since=None, until=None)


# The end of both specialties plans: their `calling` (specialty, site) and `responders`
# (specialty, responder) pairs, counted per specialty.
_SITES_AND_RESPONDERS_PER_SPECIALTY = """
    SELECT s.specialty_code, s.sites, coalesce(r.responders, 0) AS responders
    FROM (SELECT specialty_code, count(*) AS sites FROM calling GROUP BY 1) s
    LEFT JOIN (SELECT specialty_code, count(*) AS responders FROM responders
               GROUP BY 1) r USING (specialty_code)
    ORDER BY s.sites DESC, s.specialty_code"""


class IndicatorQueries:
    """Every indicator's SQL; each method returns plain rows (JSON and CSV ready)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[Row]:
        result = await self._session.execute(text(sql), params)
        # Rows zipped with the keys: half the cost of a mapping per row, which
        # shows on the per-site indicators (hundreds of rows).
        keys = list(result.keys())
        return [dict(zip(keys, row, strict=True)) for row in result.all()]

    async def teleconsultations_by_month(self, filters: Filters) -> list[Row]:
        """Per Paris month ('YYYY-MM'; None for sessions without a start), mode and
        assistance: the teleconsultations. Every teleconsultation indicator folds these rows
        (a year is at most 13 months x 4 kinds), so a summary reads the cells once."""
        cells, params = _teleconsultation_cells(filters, by_site=_by_site(filters))
        where = _activity_where(_unbounded(filters), "c", "month")
        return await self._rows(
            # Grouped by the cell's month first: to_char once per group, not once per cell.
            f"""SELECT to_char(nullif(m.month, '-infinity'::date), 'YYYY-MM') AS month,
                       m.mode, m.assistance, m.teleconsultations
                FROM (SELECT c.month, c.mode, c.assistance,
                             sum(c.sessions)::bigint AS teleconsultations
                      FROM ({cells}) c {_join_site(filters, "c")}
                      WHERE {where.sql}
                      GROUP BY c.month, c.mode, c.assistance
                      HAVING sum(c.sessions) <> 0) m
                ORDER BY 1, 2, 3""",
            {**params, **where.params},
        )

    async def teleexpertises(self, filters: Filters) -> list[Row]:
        cells, params = _expertise_cells(filters, by_site=_by_site(filters))
        where = _activity_where(_unbounded(filters), "c", "month")
        return await self._rows(
            f"""SELECT CASE WHEN c.outcome = '' THEN 'open' ELSE c.outcome END AS outcome,
                       sum(c.expertises)::bigint AS teleexpertises
                FROM ({cells}) c {_join_site(filters, "c")}
                WHERE {where.sql}
                GROUP BY 1 HAVING sum(c.expertises) <> 0 ORDER BY 1""",
            {**params, **where.params},
        )

    async def telemonitoring(self, filters: Filters) -> list[Row]:
        where = _activity_where(
            Filters(
                since=filters.since,
                until=filters.until,
                departement=filters.departement,
                site_category=filters.site_category,
                deployment_model=filters.deployment_model,
            ),
            "m",
            "measured_at",
        )
        return await self._rows(
            f"""SELECT m.loinc_code, count(*) AS measurements,
                       count(*) FILTER (WHERE m.abnormal) AS abnormal
                FROM measurement m {_join_site(filters, "m")}
                WHERE {where.sql}
                GROUP BY m.loinc_code ORDER BY m.loinc_code""",
            where.params,
        )

    async def sites_by_departement(self, filters: Filters) -> list[Row]:
        where = _site_where(filters)
        return await self._rows(
            f"""SELECT st.departement, count(*) AS sites FROM site st WHERE {where.sql}
                GROUP BY st.departement ORDER BY st.departement""",
            where.params,
        )

    async def site_typology(self, filters: Filters) -> list[Row]:
        where = _site_where(filters)
        return await self._rows(
            f"""SELECT st.category, count(*) AS sites FROM site st WHERE {where.sql}
                GROUP BY st.category ORDER BY count(*) DESC, st.category""",
            where.params,
        )

    async def territory(self, filters: Filters) -> Row:
        where = _site_where(filters)
        rows = await self._rows(
            f"""SELECT count(*) AS sites,
                       count(*) FILTER (WHERE st.rural) AS rural_sites,
                       count(*) FILTER (WHERE st.under_served) AS under_served_sites,
                       count(DISTINCT st.commune_insee) FILTER (WHERE st.under_served)
                           AS under_served_communes
                FROM site st WHERE {where.sql}""",
            where.params,
        )
        return rows[0]

    async def site_activity(self, filters: Filters) -> list[Row]:
        """Per operational site: assisted/simple teleconsultations and tele-expertises."""
        sites = _site_where(filters)
        if not filters.specialty:
            # Every specialty: one row per site and cell (`site_activity_*`).
            territory = filters.departement or filters.site_category or filters.deployment_model
            cells, cell_params = _site_activity_cells(
                filters,
                f"r.site_id IN (SELECT st.site_id FROM site st WHERE {sites.sql})"
                if territory
                else "TRUE",
            )
            return await self._rows(
                f"""WITH acts AS (
                        SELECT a.site_id, sum(a.assisted) AS assisted, sum(a.simple) AS simple,
                               sum(a.expertises) AS expertises
                        FROM ({cells}) a GROUP BY a.site_id)
                    SELECT st.site_id, st.name, st.departement, st.category,
                           coalesce(acts.assisted, 0)::int AS assisted,
                           coalesce(acts.simple, 0)::int AS simple,
                           coalesce(acts.expertises, 0)::int AS expertises
                    FROM site st LEFT JOIN acts ON acts.site_id = st.site_id
                    WHERE {sites.sql}
                    ORDER BY st.site_id""",
                {**sites.params, **cell_params},
            )
        sessions, session_params = _teleconsultation_cells(filters)
        expertises, expertise_params = _specialty_cells(filters, "expertise_requested")
        specialty = "AND a.specialty_code = :specialty" if filters.specialty else ""
        params = {**sites.params, **session_params, **expertise_params}
        if filters.specialty:
            params["specialty"] = filters.specialty
        return await self._rows(
            f"""WITH acts AS (
                    SELECT s.site_id,
                           sum(s.sessions) FILTER (WHERE s.assistance = 'assisted') AS assisted,
                           sum(s.sessions) FILTER (WHERE s.assistance <> 'assisted') AS simple,
                           0 AS expertises
                    FROM ({sessions}) s
                    WHERE TRUE {specialty.replace("a.", "s.")}
                    GROUP BY s.site_id
                    UNION ALL
                    SELECT e.site_id, 0, 0, sum(e.acts)
                    FROM ({expertises}) e
                    WHERE TRUE {specialty.replace("a.", "e.")}
                    GROUP BY e.site_id)
                SELECT st.site_id, st.name, st.departement, st.category,
                       coalesce(sum(acts.assisted), 0)::int AS assisted,
                       coalesce(sum(acts.simple), 0)::int AS simple,
                       coalesce(sum(acts.expertises), 0)::int AS expertises
                FROM site st LEFT JOIN acts ON acts.site_id = st.site_id
                WHERE {sites.sql}
                GROUP BY st.site_id ORDER BY st.site_id""",
            params,
        )

    async def site_monthly_sessions(
        self, filters: Filters, window: tuple[datetime, datetime]
    ) -> list[Row]:
        """Per operational site and month of [start, end): its teleconsultations."""
        sites = _site_where(filters)
        cells, cell_params = _teleconsultation_cells(Filters(since=window[0], until=window[1]))
        return await self._rows(
            f"""SELECT st.site_id, st.name, st.departement,
                       to_char(c.month, 'YYYY-MM') AS month,
                       coalesce(sum(c.sessions), 0)::bigint AS sessions
                FROM site st
                LEFT JOIN ({cells}) c ON c.site_id = st.site_id
                WHERE {sites.sql}
                GROUP BY st.site_id, st.name, st.departement, 4 ORDER BY st.site_id, 4""",
            {**sites.params, **cell_params},
        )

    async def usage_profiles(
        self, filters: Filters, window: tuple[datetime, datetime], months: list[date]
    ) -> list[Row]:
        """Each distinct profile of monthly teleconsultations over `months` (first days of
        the months of [start, end), missing months 0) and how many operational sites have it.

        The same counts as `site_monthly_sessions`, grouped by profile in the database: the
        usage rule is then applied once per profile, not once per site and month row.
        """
        sites = _site_where(filters)
        cells, cell_params = _teleconsultation_cells(Filters(since=window[0], until=window[1]))
        # One column per month (no site x month grid to sort), then one row per profile.
        per_month = [f":usage_month_{i}" for i in range(len(months))]
        columns = ", ".join(
            f"sum(c.sessions) FILTER (WHERE c.month = {month}) AS m{i}"
            for i, month in enumerate(per_month)
        )
        profile = ", ".join(f"coalesce(p.m{i}, 0)::bigint" for i in range(len(months)))
        return await self._rows(
            f"""WITH per_site AS (
                    SELECT c.site_id, {columns} FROM ({cells}) c GROUP BY c.site_id)
                SELECT ARRAY[{profile}] AS monthly_sessions, count(*)::bigint AS sites
                FROM site st LEFT JOIN per_site p ON p.site_id = st.site_id
                WHERE {sites.sql}
                GROUP BY 1""",
            {
                **sites.params,
                **cell_params,
                **{name[1:]: month for name, month in zip(per_month, months, strict=True)},
            },
        )

    async def specialties(self, filters: Filters, *, probe: bool | None = None) -> list[Row]:
        """Per specialty: operational sites calling on it and responders mobilised (by
        teleconsultations and answered tele-expertises).

        Two plans, same answer (a test holds them equal). Folding every cell of the period
        reads one row per (site, specialty, responder, month): ~200,000 for a region-wide year
        at 1,000,000 sessions. Probing asks, for each (specialty, responder) and each
        (operational site, specialty), whether one cell of the period exists, stopping at the
        first: a few thousand index descents. Probing is chosen when the territory is the
        whole region; a département or site attribute leaves few sites, whose cells the fold
        reads by site. Region-wide over a bounded period, probing reads `specialty_presence`
        instead: one overlap test per (specialty, site) and (specialty, responder).
        """
        if probe is None:
            probe = not (filters.departement or filters.site_category or filters.deployment_model)
        if probe:
            return await self._specialties_by_probes(filters)
        sites = _site_where(filters)
        # The territory's few sites: their cells by site (primary key), not the period's all.
        cells, cell_params = _specialty_cells(
            filters,
            "teleconsultation",
            "expertise_answered",
            sites=f"r.site_id IN (SELECT st.site_id FROM site st WHERE {sites.sql})",
        )
        specialty = "AND a.specialty_code = :specialty" if filters.specialty else ""
        params = {**sites.params, **cell_params}
        if filters.specialty:
            params["specialty"] = filters.specialty
        return await self._rows(
            # Two hashed DISTINCTs instead of count(DISTINCT ...), which sorts every row.
            f"""WITH a AS (
                    SELECT a.specialty_code, a.site_id, a.responder_id
                    FROM ({cells}) a JOIN site st ON st.site_id = a.site_id
                    WHERE {sites.sql} AND a.specialty_code <> '' {specialty}),
                by_site AS (
                    SELECT specialty_code, count(*) AS sites
                    FROM (SELECT DISTINCT specialty_code, site_id FROM a) d GROUP BY 1),
                by_responder AS (
                    SELECT specialty_code, count(*) AS responders
                    FROM (SELECT DISTINCT specialty_code, responder_id FROM a
                          WHERE responder_id <> '') d GROUP BY 1)
                SELECT s.specialty_code, s.sites, coalesce(r.responders, 0) AS responders
                FROM by_site s LEFT JOIN by_responder r USING (specialty_code)
                ORDER BY s.sites DESC, s.specialty_code""",
            params,
        )

    async def _specialties_by_probes(self, filters: Filters) -> list[Row]:
        split = _split(filters)
        sites = _site_where(filters)
        sources = "r.source IN ('teleconsultation', 'expertise_answered')"
        params: dict[str, Any] = {**sites.params, **split.params}
        specialty = ""
        if filters.specialty:
            specialty = "AND {0}.specialty_code = :specialty"
            params["specialty"] = filters.specialty

        def probe(match: str) -> str:
            """A LATERAL row when some month or day cell of the period matches: it stops at
            the first. (An EXISTS would do, but the planner turns it into a hashed subplan
            that reads every cell of the period, and drops a LIMIT inside it.)"""
            ranges = [f"specialty_month r WHERE {split.months}"] + [
                f"specialty_day r WHERE {days}" for _, days in split.days_on("r.day")
            ]
            union = " UNION ALL ".join(
                f"SELECT 1 FROM {cells} AND {sources} AND {match}" for cells in ranges
            )
            return f"CROSS JOIN LATERAL ({union} LIMIT 1) hit"

        edges = (
            " UNION ALL ".join(_specialty_edges(split, "teleconsultation", "expertise_answered"))
            or "SELECT NULL::varchar, NULL::varchar, NULL::varchar, NULL::varchar, 0 WHERE FALSE"
        )
        responder_match = """r.specialty_code = p.specialty_code AND r.responder_id = p.responder_id
            AND r.site_id = ANY ((SELECT ids FROM operational)::varchar[])"""
        site_match = "r.site_id = o.site_id AND r.specialty_code = c.specialty_code"
        if filters.since is not None and filters.until is not None:
            return await self._specialties_by_presence(sites, params, specialty, edges)
        return await self._rows(
            # Every (specialty, responder) ever rolled up, by a loose index scan: the monthly
            # rollup holds every month, so it lists every pair any period can contain.
            # The operational sites as one array: a probe then stops at its first cell (an IN
            # list would be planned as a hash join that reads every cell of the pair).
            f"""WITH RECURSIVE operational AS MATERIALIZED (
                    SELECT coalesce(array_agg(st.site_id), '{{}}') AS ids
                    FROM site st WHERE {sites.sql}),
                pairs AS (
                    (SELECT specialty_code, responder_id FROM specialty_month
                     ORDER BY 1, 2 LIMIT 1)
                    UNION ALL
                    SELECT n.specialty_code, n.responder_id FROM pairs p
                    CROSS JOIN LATERAL (
                        SELECT r.specialty_code, r.responder_id FROM specialty_month r
                        WHERE (r.specialty_code, r.responder_id)
                              > (p.specialty_code, p.responder_id)
                        ORDER BY 1, 2 LIMIT 1) n),
                wanted AS MATERIALIZED (
                    SELECT * FROM pairs p WHERE p.specialty_code <> '' {specialty.format("p")}),
                edges AS MATERIALIZED (
                    SELECT e.* FROM ({edges}) AS e(site_id, source, specialty_code,
                                                   responder_id, acts)
                    WHERE e.specialty_code <> ''
                          AND e.site_id = ANY ((SELECT ids FROM operational)::varchar[])
                          {specialty.format("e")}),
                responders AS (
                    SELECT p.specialty_code, p.responder_id FROM wanted p
                    {probe(responder_match)}
                    WHERE p.responder_id <> ''
                    UNION
                    SELECT specialty_code, responder_id FROM edges WHERE responder_id <> ''),
                calling AS (
                    SELECT c.specialty_code, o.site_id
                    FROM (SELECT DISTINCT specialty_code FROM wanted) c
                    CROSS JOIN (SELECT unnest(ids) AS site_id FROM operational) o
                    {probe(site_match)}
                    UNION
                    SELECT specialty_code, site_id FROM edges)
                {_SITES_AND_RESPONDERS_PER_SPECIALTY}""",
            params,
        )

    async def _specialties_by_presence(
        self, sites: _Where, params: dict[str, Any], specialty: str, edges: str
    ) -> list[Row]:
        """A bounded period, region-wide: the keys of `specialty_presence` whose days meet the
        period's whole days (a responder's days only count operational sites), plus the
        partial days' base rows. The whole months are tested first, on the keys' few month
        ranges: their many day ranges are read only for keys absent from those months."""
        whole = "FALSE"
        if "cells_first_day" in params and "cells_last_day" in params:
            whole = "p.days && daterange(:cells_first_day, :cells_last_day)"
            first, last = params.get("cells_first_month"), params.get("cells_last_month")
            if first is not None and last is not None and first < last:
                whole = f"(p.months && daterange(:cells_first_month, :cells_last_month) OR {whole})"
        return await self._rows(
            f"""WITH edges AS MATERIALIZED (
                    SELECT e.* FROM ({edges}) AS e(site_id, source, specialty_code,
                                                   responder_id, acts)
                    WHERE e.specialty_code <> '' {specialty.format("e")}
                          AND EXISTS (SELECT 1 FROM site st
                                      WHERE st.site_id = e.site_id AND {sites.sql})),
                present AS MATERIALIZED (
                    SELECT p.kind, p.specialty_code, p.who FROM specialty_presence p
                    WHERE {whole} AND p.specialty_code <> '' {specialty.format("p")}),
                -- The edges add the pairs not already present: an anti-join on the few
                -- edge rows, not a hashed UNION of every present pair.
                responders AS (
                    SELECT p.specialty_code, p.who AS responder_id FROM present p
                    WHERE p.kind = 'responder'
                    UNION ALL
                    SELECT DISTINCT e.specialty_code, e.responder_id FROM edges e
                    WHERE e.responder_id <> '' AND NOT EXISTS (
                        SELECT 1 FROM present p WHERE p.kind = 'responder'
                        AND p.specialty_code = e.specialty_code AND p.who = e.responder_id)),
                calling AS (
                    SELECT p.specialty_code, p.who AS site_id FROM present p
                    WHERE p.kind = 'site' AND EXISTS (
                        SELECT 1 FROM site st WHERE st.site_id = p.who AND {sites.sql})
                    UNION ALL
                    SELECT DISTINCT e.specialty_code, e.site_id FROM edges e
                    WHERE NOT EXISTS (
                        SELECT 1 FROM present p WHERE p.kind = 'site'
                        AND p.specialty_code = e.specialty_code AND p.who = e.site_id))
                {_SITES_AND_RESPONDERS_PER_SPECIALTY}""",
            params,
        )

    async def quality(self, filters: Filters) -> Row:
        """Service-quality counts and percentiles, from the quality rollups: counts add up,
        percentiles are read from the log-spaced histograms (within ±2.5 % of exact)."""
        cells, params = _quality_cells(filters, by_site=_by_site(filters))
        where = _activity_where(_unbounded(filters), "c", "month")
        rows = await self._rows(
            f"""SELECT c.measure, c.bucket, sum(c.n)::bigint AS n
                FROM ({cells}) c {_join_site(filters, "c")}
                WHERE {where.sql}
                GROUP BY c.measure, c.bucket HAVING sum(c.n) <> 0""",
            {**params, **where.params},
        )
        counts: dict[str, int] = dict.fromkeys(QUALITY_COUNTS, 0)
        histograms: dict[str, dict[int, int]] = {name: {} for name in QUALITY_HISTOGRAMS}
        for row in rows:
            if row["measure"] in histograms:
                histograms[row["measure"]][row["bucket"]] = int(row["n"])
            else:
                counts[row["measure"]] = counts.get(row["measure"], 0) + int(row["n"])
        found: Row = {}
        for name, fractions in QUALITY_HISTOGRAMS.items():
            for label, fraction in fractions:
                found[f"{name}_{label}_seconds"] = histogram_percentile(histograms[name], fraction)
        return {**found, **counts}

    async def call_quality(self, filters: Filters) -> list[Row]:
        where = _activity_where(
            Filters(
                since=filters.since,
                until=filters.until,
                departement=filters.departement,
                site_category=filters.site_category,
                deployment_model=filters.deployment_model,
            ),
            "q",
            "measured_at",
        )
        return await self._rows(
            f"""SELECT q.source, q.level, count(*) AS samples
                FROM quality_sample q {_join_site(filters, "q")}
                WHERE {where.sql} GROUP BY q.source, q.level ORDER BY q.source, q.level""",
            where.params,
        )

    async def fleet(self, filters: Filters, online_since: datetime) -> Row:
        where = _Where()
        if filters.departement:
            where.add("k.departement = :departement", departement=filters.departement)
        alerts = _activity_where(
            Filters(since=filters.since, until=filters.until, departement=filters.departement),
            "al",
            "raised_at",
        )
        rows = await self._rows(
            f"""SELECT
                (SELECT count(*) FROM kiosk_health k WHERE {where.sql}) AS kiosks_reporting,
                (SELECT count(*) FROM kiosk_health k
                 WHERE k.last_seen_at >= :online_since AND {where.sql}) AS kiosks_online,
                (SELECT count(*) FROM alert al WHERE al.raised_at IS NOT NULL
                 AND {alerts.sql}) AS alerts_raised,
                (SELECT count(*) FROM alert al WHERE al.raised_at IS NOT NULL
                 AND al.cleared_at IS NULL AND {alerts.sql}) AS alerts_open""",
            {**where.params, **alerts.params, "online_since": online_since},
        )
        return rows[0]

    async def alerts(self, filters: Filters) -> list[Row]:
        where = _activity_where(
            Filters(since=filters.since, until=filters.until, departement=filters.departement),
            "al",
            "raised_at",
        )
        return await self._rows(
            f"""SELECT al.kind, al.severity, count(*) AS raised,
                       count(*) FILTER (WHERE al.cleared_at IS NULL) AS open
                FROM alert al WHERE al.raised_at IS NOT NULL AND {where.sql}
                GROUP BY al.kind, al.severity ORDER BY al.kind, al.severity""",
            where.params,
        )


async def headline_acts(session: AsyncSession) -> list[Row]:
    """All-time acts by département, site category, specialty and act (for Prometheus)."""
    result = await session.execute(
        text(
            f"""SELECT a.departement, coalesce(st.category, '') AS site_category,
                       a.specialty_code AS specialty, a.act, count(*) AS acts
                FROM (
                    SELECT s.departement, s.site_id, s.specialty_code,
                           CASE WHEN s.assistance = 'assisted' THEN 'assisted_teleconsultation'
                                ELSE 'simple_teleconsultation' END AS act
                    FROM session s WHERE {_TELECONSULTATION}
                    UNION ALL
                    SELECT e.departement, e.site_id, e.specialty_code, 'teleexpertise'
                    FROM expertise e WHERE e.answered_at IS NOT NULL
                    UNION ALL
                    SELECT m.departement, m.site_id, '', 'telemonitoring_measurement'
                    FROM measurement m) a
                LEFT JOIN site st ON st.site_id = a.site_id
                GROUP BY 1, 2, 3, 4"""
        )
    )
    return [dict(row) for row in result.mappings()]


async def headline_sites(session: AsyncSession) -> list[Row]:
    result = await session.execute(
        text(
            """SELECT departement, category AS site_category, count(*) AS sites
               FROM site WHERE active GROUP BY 1, 2"""
        )
    )
    return [dict(row) for row in result.mappings()]


async def headline_fleet(session: AsyncSession, online_since: datetime) -> list[Row]:
    result = await session.execute(
        text(
            """SELECT departement, count(*) FILTER (WHERE last_seen_at >= :since) AS online,
                      (SELECT count(*) FROM alert al WHERE al.departement = k.departement
                       AND al.raised_at IS NOT NULL AND al.cleared_at IS NULL) AS alerts_open
               FROM kiosk_health k GROUP BY departement"""
        ),
        {"since": online_since},
    )
    return [dict(row) for row in result.mappings()]


SNAPSHOT_CONNECTIONS = 3
"""Connections one `read_in_one_snapshot` reads on at once."""


async def read_in_one_snapshot(
    session: AsyncSession,
    reads: Mapping[str, Callable[[IndicatorQueries], Awaitable[list[Row]]]],
    *,
    connections: int = SNAPSHOT_CONNECTIONS,
) -> dict[str, list[Row]]:
    """Every read's rows, in the order given, by a few lanes sharing the snapshot of `session`
    (its REPEATABLE READ READ ONLY transaction exports the snapshot, the others import it),
    so independent reads use several cores and still agree with each other."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    snapshot = (await session.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
    pending = list(reads.items())
    results: dict[str, list[Row]] = {}

    async def lane(queries: IndicatorQueries) -> None:
        while pending:
            name, read = pending.pop(0)
            results[name] = await read(queries)

    async def joined_lane() -> None:
        async with AsyncSession(session.bind) as other, other.begin():
            await other.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            await other.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            await lane(IndicatorQueries(other))

    # A task group: if one lane fails, the others are cancelled before the snapshot's
    # transaction ends (no read outlives the request).
    async with asyncio.TaskGroup() as lanes:
        lanes.create_task(lane(IndicatorQueries(session)))
        for _ in range(min(connections - 1, len(reads) - 1, _spare(session))):
            lanes.create_task(joined_lane())
    return results


def _spare(session: AsyncSession) -> int:
    """Connections the pool can lend without overflowing: under many summaries at once, each
    reads on its own connection alone rather than queue for more (no pool exhaustion)."""
    engine = session.bind  # a session bound to one connection cannot lend another
    if isinstance(engine, AsyncEngine) and isinstance(engine.sync_engine.pool, QueuePool):
        return max(engine.sync_engine.pool.size() - engine.sync_engine.pool.checkedout(), 0)
    return 0
