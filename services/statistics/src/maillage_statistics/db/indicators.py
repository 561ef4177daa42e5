# ruff: noqa: S608 - SQL is assembled from constants and column names; values are bound.
"""Indicator queries over the projections (read-only; the rules live in `domain.rules`).

A teleconsultation is a session of act `teleconsultation` that ended normally (SessionEnded),
dated by its start. A site is operational while its latest directory snapshot is active.
Months are calendar months in Europe/Paris.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


class IndicatorQueries:
    """Every indicator's SQL; each method returns plain rows (JSON and CSV ready)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[Row]:
        result = await self._session.execute(text(sql), params)
        return [dict(row) for row in result.mappings()]

    async def teleconsultations(self, filters: Filters) -> list[Row]:
        where = _activity_where(filters, "s", "started_at")
        return await self._rows(
            f"""SELECT s.mode, s.assistance, count(*) AS teleconsultations
                FROM session s {_join_site(filters, "s")}
                WHERE {_TELECONSULTATION} AND {where.sql}
                GROUP BY s.mode, s.assistance ORDER BY s.mode, s.assistance""",
            where.params,
        )

    async def teleconsultations_monthly(self, filters: Filters) -> list[Row]:
        where = _activity_where(filters, "s", "started_at")
        return await self._rows(
            f"""SELECT to_char(date_trunc('month', s.started_at AT TIME ZONE :tz), 'YYYY-MM')
                       AS month,
                       count(*) AS teleconsultations
                FROM session s {_join_site(filters, "s")}
                WHERE {_TELECONSULTATION} AND {where.sql}
                GROUP BY 1 ORDER BY 1""",
            {**where.params, "tz": TIME_ZONE},
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
        period = _period(filters)
        specialty = "AND a.specialty_code = :specialty" if filters.specialty else ""
        params = {**sites.params, **period.params}
        if filters.specialty:
            params["specialty"] = filters.specialty
        return await self._rows(
            f"""WITH acts AS (
                    SELECT s.site_id,
                           count(*) FILTER (WHERE s.assistance = 'assisted') AS assisted,
                           count(*) FILTER (WHERE s.assistance <> 'assisted') AS simple,
                           0 AS expertises
                    FROM session s
                    WHERE {_TELECONSULTATION} AND {period.on("s.started_at")}
                          {specialty.replace("a.", "s.")}
                    GROUP BY s.site_id
                    UNION ALL
                    SELECT e.site_id, 0, 0, count(*)
                    FROM expertise e
                    WHERE e.requested_at IS NOT NULL AND {period.on("e.requested_at")}
                          {specialty.replace("a.", "e.")}
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
        params: dict[str, Any] = {
            **sites.params,
            "window_start": window[0],
            "window_end": window[1],
            "tz": TIME_ZONE,
        }
        return await self._rows(
            f"""SELECT st.site_id, st.name, st.departement,
                       to_char(date_trunc('month', s.started_at AT TIME ZONE :tz), 'YYYY-MM')
                           AS month,
                       count(s.session_id) AS sessions
                FROM site st
                LEFT JOIN session s ON s.site_id = st.site_id AND {_TELECONSULTATION}
                     AND s.started_at >= :window_start AND s.started_at < :window_end
                WHERE {sites.sql}
                GROUP BY st.site_id, st.name, st.departement, 4 ORDER BY st.site_id, 4""",
            params,
        )

    async def specialties(self, filters: Filters) -> list[Row]:
        period = _period(filters)
        sites = _site_where(filters)
        specialty = "AND a.specialty_code = :specialty" if filters.specialty else ""
        params = {**sites.params, **period.params}
        if filters.specialty:
            params["specialty"] = filters.specialty
        return await self._rows(
            f"""WITH acts AS (
                    SELECT s.site_id, s.specialty_code, s.responder_id FROM session s
                    WHERE {_TELECONSULTATION} AND {period.on("s.started_at")}
                    UNION ALL
                    SELECT e.site_id, e.specialty_code, e.responder_id FROM expertise e
                    WHERE e.answered_at IS NOT NULL AND {period.on("e.requested_at")})
                SELECT a.specialty_code, count(DISTINCT a.site_id) AS sites,
                       count(DISTINCT a.responder_id) FILTER (WHERE a.responder_id <> '')
                           AS responders
                FROM acts a JOIN site st ON st.site_id = a.site_id
                WHERE {sites.sql} AND a.specialty_code <> '' {specialty}
                GROUP BY a.specialty_code ORDER BY sites DESC, a.specialty_code""",
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


@dataclass
class _Period:
    params: dict[str, Any]

    def on(self, column: str) -> str:
        clauses = ["TRUE"]
        if "since" in self.params:
            clauses.append(f"{column} >= :since")
        if "until" in self.params:
            clauses.append(f"{column} < :until")
        return " AND ".join(clauses)


def _period(filters: Filters) -> _Period:
    params: dict[str, Any] = {}
    if filters.since is not None:
        params["since"] = filters.since
    if filters.until is not None:
        params["until"] = filters.until
    return _Period(params)


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
