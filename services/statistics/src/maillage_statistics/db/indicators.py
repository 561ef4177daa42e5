# ruff: noqa: S608 - SQL is assembled from constants and column names; values are bound.
"""Indicator queries over the projections (read-only; the rules live in `domain.rules`).

A teleconsultation is a session of act `teleconsultation` that ended normally (SessionEnded),
dated by its start. A site is operational while its latest directory snapshot is active.
Months are calendar months in Europe/Paris.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_statistics.domain.rules import Filters

TIME_ZONE = "Europe/Paris"
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
PARIS = ZoneInfo(TIME_ZONE)


@dataclass
class _Split:
    """A period split into whole Paris months (read from a rollup) and edges (base rows)."""

    months: str
    edges: list[tuple[str, str]]
    params: dict[str, Any]

    def edges_on(self, instant: str) -> list[str]:
        # One range per query branch: an OR of ranges defeats the index-only scans.
        return [f"{instant} >= :{lo} AND {instant} < :{hi}" for lo, hi in self.edges]


def _paris_month(instant: datetime, *, ceiling: bool) -> date:
    """The Paris month containing `instant` (the next one if `ceiling` and not its start)."""
    start = instant.astimezone(PARIS).date().replace(day=1)
    if ceiling and _midnight(start) != instant:
        start = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=PARIS)


def _split(filters: Filters) -> _Split:
    since, until = filters.since, filters.until
    if since is None and until is None:
        return _Split("TRUE", [], {})
    # Rows without an instant (month '-infinity') are in no bounded period, as in the base.
    months = ["r.month > '-infinity'::date"]
    edges: list[tuple[str, str]] = []
    params: dict[str, Any] = {
        key: value for key, value in (("cells_since", since), ("cells_until", until)) if value
    }
    first = _paris_month(since, ceiling=True) if since else None
    last = _paris_month(until, ceiling=False) if until else None
    if first is not None and last is not None and first >= last:
        return _Split("FALSE", [("cells_since", "cells_until")], params)
    if since is not None and first is not None:
        months.append("r.month >= :cells_first")
        params.update(cells_first=first, cells_first_at=_midnight(first))
        if _midnight(first) != since:
            edges.append(("cells_since", "cells_first_at"))
    if until is not None and last is not None:
        months.append("r.month < :cells_last")
        params.update(cells_last=last, cells_last_at=_midnight(last))
        if _midnight(last) != until:
            edges.append(("cells_last_at", "cells_until"))
    return _Split(" AND ".join(months), edges, params)


def _teleconsultation_cells(filters: Filters) -> tuple[str, dict[str, Any]]:
    """Rows (month, site_id, departement, specialty_code, mode, assistance, sessions)."""
    split = _split(filters)
    sql = f"""SELECT r.month, r.site_id, r.departement, r.specialty_code, r.mode, r.assistance,
                     r.sessions
              FROM teleconsultation_month r WHERE {split.months}"""
    for edge in split.edges_on("s.started_at"):
        sql += f""" UNION ALL
            SELECT date_trunc('month', s.started_at AT TIME ZONE '{TIME_ZONE}')::date,
                   s.site_id, s.departement, s.specialty_code, s.mode, s.assistance,
                   count(*)::int
            FROM session s WHERE {_TELECONSULTATION} AND {edge}
            GROUP BY 1, 2, 3, 4, 5, 6"""
    return sql, split.params


def _specialty_cells(filters: Filters, *sources: str) -> tuple[str, dict[str, Any]]:
    """Rows (site_id, source, specialty_code, responder_id, acts) of these sources."""
    split = _split(filters)
    wanted = ", ".join(f"'{source}'" for source in sources)
    sql = f"""SELECT r.site_id, r.source, r.specialty_code, r.responder_id, r.acts
              FROM specialty_month r WHERE r.source IN ({wanted}) AND {split.months}"""
    for session_edge in split.edges_on("s.started_at") if "teleconsultation" in sources else []:
        sql += f""" UNION ALL
            SELECT s.site_id, 'teleconsultation', s.specialty_code, s.responder_id,
                   count(*)::int
            FROM session s WHERE {_TELECONSULTATION} AND {session_edge}
            GROUP BY 1, 2, 3, 4"""
    expertises = any(source.startswith("expertise") for source in sources)
    for expertise_edge in split.edges_on("e.requested_at") if expertises else []:
        sql += f""" UNION ALL
            SELECT * FROM (
                SELECT e.site_id, f.source, e.specialty_code,
                       CASE WHEN f.source = 'expertise_answered' THEN e.responder_id ELSE '' END,
                       count(*)::int
                FROM expertise e CROSS JOIN LATERAL (VALUES
                    (CASE WHEN e.requested_at IS NOT NULL THEN 'expertise_requested' END),
                    (CASE WHEN e.answered_at IS NOT NULL THEN 'expertise_answered' END))
                    AS f(source)
                WHERE f.source IS NOT NULL AND {expertise_edge}
                GROUP BY 1, 2, 3, 4) b WHERE b.source IN ({wanted})"""
    return sql, split.params


def _unbounded(filters: Filters) -> Filters:
    """The filters without their period (the cells carry it)."""
    return replace(filters, since=None, until=None)


class IndicatorQueries:
    """Every indicator's SQL; each method returns plain rows (JSON and CSV ready)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[Row]:
        result = await self._session.execute(text(sql), params)
        return [dict(row) for row in result.mappings()]

    async def teleconsultations(self, filters: Filters) -> list[Row]:
        cells, params = _teleconsultation_cells(filters)
        where = _activity_where(_unbounded(filters), "c", "month")
        return await self._rows(
            f"""SELECT c.mode, c.assistance, sum(c.sessions)::bigint AS teleconsultations
                FROM ({cells}) c {_join_site(filters, "c")}
                WHERE {where.sql}
                GROUP BY c.mode, c.assistance ORDER BY c.mode, c.assistance""",
            {**params, **where.params},
        )

    async def teleconsultations_monthly(self, filters: Filters) -> list[Row]:
        cells, params = _teleconsultation_cells(filters)
        where = _activity_where(_unbounded(filters), "c", "month")
        return await self._rows(
            f"""SELECT to_char(nullif(c.month, '-infinity'::date), 'YYYY-MM') AS month,
                       sum(c.sessions)::bigint AS teleconsultations
                FROM ({cells}) c {_join_site(filters, "c")}
                WHERE {where.sql}
                GROUP BY 1 ORDER BY 1""",
            {**params, **where.params},
        )

    async def teleexpertises(self, filters: Filters) -> list[Row]:
        where = _activity_where(filters, "e", "requested_at")
        return await self._rows(
            f"""SELECT CASE WHEN e.outcome = '' THEN 'open' ELSE e.outcome END AS outcome,
                       count(*) AS teleexpertises
                FROM expertise e {_join_site(filters, "e")}
                WHERE e.requested_at IS NOT NULL AND {where.sql}
                GROUP BY 1 ORDER BY 1""",
            where.params,
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

    async def specialties(self, filters: Filters) -> list[Row]:
        sites = _site_where(filters)
        cells, cell_params = _specialty_cells(filters, "teleconsultation", "expertise_answered")
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

    async def quality(self, filters: Filters) -> Row:
        join = "JOIN site st ON st.site_id = {0}.site_id"
        attrs = filters.site_category or filters.deployment_model
        sessions = _activity_where(filters, "s", "started_at")
        appointments = _activity_where(filters, "a", "start_at")
        consultations = _activity_where(filters, "c", "requested_at")
        expertises = _activity_where(filters, "e", "requested_at")
        params = {
            **{f"s_{k}": v for k, v in sessions.params.items()},
            **{f"a_{k}": v for k, v in appointments.params.items()},
            **{f"c_{k}": v for k, v in consultations.params.items()},
            **{f"e_{k}": v for k, v in expertises.params.items()},
        }

        def scoped(where: _Where, prefix: str) -> str:
            sql = where.sql
            for key in sorted(where.params, key=len, reverse=True):
                sql = sql.replace(f":{key}", f":{prefix}_{key}")
            return sql

        def site(alias: str) -> str:
            return join.format(alias) if attrs else ""

        rows = await self._rows(
            f"""SELECT
                (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY c.time_to_accept_seconds)
                 FROM consultation c {site("c")}
                 WHERE c.accepted_at IS NOT NULL AND {scoped(consultations, "c")})
                    AS time_to_accept_p50_seconds,
                (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY c.time_to_accept_seconds)
                 FROM consultation c {site("c")}
                 WHERE c.accepted_at IS NOT NULL AND {scoped(consultations, "c")})
                    AS time_to_accept_p90_seconds,
                (SELECT count(*) FROM consultation c {site("c")}
                 WHERE c.expired_at IS NOT NULL AND c.accepted_at IS NULL
                       AND {scoped(consultations, "c")}) AS on_demand_expired,
                (SELECT count(*) FROM appointment a {site("a")}
                 WHERE a.booked_at IS NOT NULL AND {scoped(appointments, "a")})
                    AS appointments_booked,
                (SELECT count(*) FROM appointment a {site("a")}
                 WHERE a.booked_at IS NOT NULL AND a.cancelled_at IS NOT NULL
                       AND {scoped(appointments, "a")}) AS appointments_cancelled,
                (SELECT count(*) FROM appointment a {site("a")}
                 WHERE a.fulfilled_at IS NOT NULL AND {scoped(appointments, "a")})
                    AS appointments_fulfilled,
                (SELECT count(*) FROM appointment a {site("a")}
                 WHERE a.no_show_at IS NOT NULL AND a.fulfilled_at IS NULL
                       AND {scoped(appointments, "a")}) AS appointments_no_show,
                (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s.live_seconds)
                 FROM session s {site("s")}
                 WHERE s.ended_at IS NOT NULL AND {scoped(sessions, "s")})
                    AS session_duration_p50_seconds,
                (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY s.live_seconds)
                 FROM session s {site("s")}
                 WHERE s.ended_at IS NOT NULL AND {scoped(sessions, "s")})
                    AS session_duration_p90_seconds,
                (SELECT count(*) FROM session s {site("s")}
                 WHERE s.failed_at IS NOT NULL AND s.ended_at IS NULL
                       AND {scoped(_activity_where(filters, "s", "failed_at"), "s")})
                    AS failed_sessions,
                (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY e.response_seconds)
                 FROM expertise e {site("e")}
                 WHERE e.answered_at IS NOT NULL AND {scoped(expertises, "e")})
                    AS expertise_response_p50_seconds,
                (SELECT count(*) FROM expertise e {site("e")}
                 WHERE e.answered_at IS NOT NULL AND {scoped(expertises, "e")})
                    AS expertises_answered,
                (SELECT count(*) FROM expertise e {site("e")}
                 WHERE e.answered_at IS NOT NULL
                       AND e.response_seconds <= e.requested_delay_seconds
                       AND {scoped(expertises, "e")}) AS expertises_answered_in_time
            """,
            params,
        )
        return rows[0]

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
