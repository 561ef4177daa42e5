"""Read use cases: compute an indicator, the observatory summary, the open-data export."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_statistics.db.indicators import (
    IndicatorQueries,
    Row,
    read_in_one_snapshot,
)
from maillage_statistics.domain.rules import (
    PARIS,
    Filters,
    SiteActType,
    UsageRule,
    UsageStatus,
    monthly_average,
    months_between,
    next_month,
    paris_midnight,
    shares,
    site_act_type,
    suppress_small,
)


@dataclass(frozen=True, slots=True)
class IndicatorParameters:
    """Parameters of the written rules (from settings), and the clock."""

    usage_rule: UsageRule = field(default_factory=UsageRule)
    kiosk_online_seconds: int = 300
    general_medicine_specialty: str = "SM54"
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


class UnknownIndicatorError(LookupError):
    """No indicator has this name."""


Compute = Callable[[IndicatorQueries, Filters, IndicatorParameters], Awaitable[list[Row]]]


def _by_mode_and_assistance(by_month: list[Row]) -> list[Row]:
    totals: Counter[tuple[str, str]] = Counter()
    for row in by_month:
        totals[row["mode"], row["assistance"]] += row["teleconsultations"]
    return [
        {"mode": mode, "assistance": assistance, "teleconsultations": count}
        for (mode, assistance), count in sorted(totals.items())
    ]


def _per_month(by_month: list[Row]) -> list[Row]:
    totals: Counter[str | None] = Counter()
    for row in by_month:
        totals[row["month"]] += row["teleconsultations"]
    # Sessions without a start (month None) last, as SQL sorts NULLs.
    months = sorted(totals, key=lambda month: (month is None, month or ""))
    return [{"month": month, "teleconsultations": totals[month]} for month in months]


async def _by_month(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return await q.teleconsultations_by_month(f)


async def _teleconsultations(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return _by_mode_and_assistance(await q.teleconsultations_by_month(f))


async def _monthly(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return _per_month(await q.teleconsultations_by_month(f))


async def _teleexpertises(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return await q.teleexpertises(f)


async def _telemonitoring(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return await q.telemonitoring(f)


async def _by_departement(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return await q.sites_by_departement(f)


async def _typology(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    rows = await q.site_typology(f)
    share = shares({row["category"]: row["sites"] for row in rows})
    return [{**row, "share": share[row["category"]]} for row in rows]


async def _act_types(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    counts = Counter(
        site_act_type(row["assisted"], row["simple"], row["expertises"])
        for row in await q.site_activity(f)
    )
    typed = {kind.value: counts.get(kind, 0) for kind in SiteActType}
    share = shares(typed)
    rows: list[Row] = [
        {"act_type": kind, "sites": count, "share": share[kind]} for kind, count in typed.items()
    ]
    rows.append({"act_type": "no_activity", "sites": counts.get(None, 0), "share": None})
    return rows


async def _territory(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    row = await q.territory(f)
    total = row["sites"]
    return [
        {
            **row,
            "rural_share": round(row["rural_sites"] / total, 4) if total else 0.0,
            "under_served_share": round(row["under_served_sites"] / total, 4) if total else 0.0,
        }
    ]


async def _site_usage(q: IndicatorQueries, f: Filters, p: IndicatorParameters) -> list[Row]:
    reference = (f.until - timedelta(microseconds=1)) if f.until else p.now()
    months = p.usage_rule.window(reference.astimezone(PARIS).date())
    window = (paris_midnight(months[0]), paris_midnight(next_month(months[-1])))
    per_site: dict[str, dict[str, Any]] = {}
    monthly: dict[str, dict[str, int]] = defaultdict(dict)
    for row in await q.site_monthly_sessions(f, window):
        per_site[row["site_id"]] = {
            "site_id": row["site_id"],
            "name": row["name"],
            "departement": row["departement"],
        }
        if row["month"] is not None:
            monthly[row["site_id"]][row["month"]] = row["sessions"]
    keys = [month.strftime("%Y-%m") for month in months]
    result = []
    for site_id, site in per_site.items():
        counts = [monthly[site_id].get(key, 0) for key in keys]
        status = p.usage_rule.status(counts)
        result.append({**site, "status": status.value, "monthly_sessions": counts})
    return result


async def _usage(q: IndicatorQueries, f: Filters, p: IndicatorParameters) -> list[Row]:
    # The sites of `_site_usage`, counted by status: the rule is applied once per distinct
    # monthly profile (a few hundred at most) instead of once per site.
    reference = (f.until - timedelta(microseconds=1)) if f.until else p.now()
    months = p.usage_rule.window(reference.astimezone(PARIS).date())
    window = (paris_midnight(months[0]), paris_midnight(next_month(months[-1])))
    counts: Counter[str] = Counter()
    for row in await q.usage_profiles(f, window, months):
        counts[p.usage_rule.status(row["monthly_sessions"]).value] += row["sites"]
    typed = {status.value: counts.get(status.value, 0) for status in UsageStatus}
    share = shares(typed)
    return [{"status": k, "sites": v, "share": share[k]} for k, v in typed.items()]


async def _specialties(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return await q.specialties(f)


async def _quality(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    row = await q.quality(f)
    booked, outcome = (
        row["appointments_booked"],
        (row["appointments_fulfilled"] + row["appointments_no_show"]),
    )
    answered = row["expertises_answered"]
    return [
        {
            **row,
            "cancellation_rate": _ratio(row["appointments_cancelled"], booked),
            "no_show_rate": _ratio(row["appointments_no_show"], outcome),
            "expertise_in_time_rate": _ratio(row["expertises_answered_in_time"], answered),
        }
    ]


async def _call_quality(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    rows = await q.call_quality(f)
    totals: Counter[str] = Counter()
    for row in rows:
        totals[row["source"]] += row["samples"]
    return [{**row, "share": _ratio(row["samples"], totals[row["source"]])} for row in rows]


async def _fleet(q: IndicatorQueries, f: Filters, p: IndicatorParameters) -> list[Row]:
    online_since = p.now() - timedelta(seconds=p.kiosk_online_seconds)
    return [await q.fleet(f, online_since)]


async def _alerts(q: IndicatorQueries, f: Filters, _: IndicatorParameters) -> list[Row]:
    return await q.alerts(f)


INDICATORS: dict[str, Compute] = {
    "teleconsultations": _teleconsultations,
    "teleconsultations-monthly": _monthly,
    "teleexpertises": _teleexpertises,
    "telemonitoring": _telemonitoring,
    "sites-by-departement": _by_departement,
    "site-act-types": _act_types,
    "site-typology": _typology,
    "territory": _territory,
    "site-usage": _site_usage,
    "usage-status": _usage,
    "specialties": _specialties,
    "quality": _quality,
    "call-quality": _call_quality,
    "fleet": _fleet,
    "alerts": _alerts,
}
"""Every indicator by its public name (the API path segment and CSV file name)."""


async def compute_indicator(
    uow: UnitOfWork, name: str, filters: Filters, parameters: IndicatorParameters
) -> list[Row]:
    """Rows of one indicator for the filters (read-only transaction)."""
    compute = INDICATORS.get(name)
    if compute is None:
        raise UnknownIndicatorError(name)
    async with uow:
        return await compute(IndicatorQueries(uow.session), filters, parameters)


async def observatory_summary(
    uow: UnitOfWork, filters: Filters, parameters: IndicatorParameters
) -> dict[str, Any]:
    """The regional bilan's layout (sites deployed, act types, départements, activity,
    specialties, typology, usage, monthly average) for any period and territory.

    The sections are independent reads: `read_in_one_snapshot` runs them on a few pooled
    connections at once, so PostgreSQL works on several cores, and they still agree with each
    other as if read one after another in a single transaction.
    """
    sections: dict[str, Compute] = {
        # Heaviest first: the lanes take the next section as they come free.
        "specialties": _specialties,
        "site-act-types": _act_types,
        "usage-status": _usage,
        "teleconsultations-by-month": _by_month,
        "teleexpertises": _teleexpertises,
        "telemonitoring": _telemonitoring,
        "sites-by-departement": _by_departement,
        "site-typology": _typology,
        "territory": _territory,
    }
    async with uow:
        results = await read_in_one_snapshot(
            uow.session,
            {name: _bound(compute, filters, parameters) for name, compute in sections.items()},
        )
    by_departement = results["sites-by-departement"]
    by_month = results["teleconsultations-by-month"]
    tc, monthly = _by_mode_and_assistance(by_month), _per_month(by_month)
    specialties = results["specialties"]
    sites = sum(row["sites"] for row in by_departement)
    total = sum(row["teleconsultations"] for row in tc)
    return {
        "period": {"since": filters.since, "until": filters.until},
        "territory": {
            "departement": filters.departement,
            "site_category": filters.site_category,
            "deployment_model": filters.deployment_model,
            "specialty": filters.specialty,
        },
        "sites_deployed": sites,
        "site_act_types": results["site-act-types"],
        "sites_by_departement": by_departement,
        "teleconsultations": {
            "total": total,
            "by_mode_and_assistance": tc,
            "per_month": monthly,
            "monthly_average": monthly_average(total, _months(filters, monthly)),
        },
        "specialties": specialties,
        "general_medicine_site_share": _general_medicine_share(
            specialties, sites, parameters.general_medicine_specialty
        ),
        "site_typology": results["site-typology"],
        "territory_coverage": results["territory"][0],
        "usage_status": results["usage-status"],
        "teleexpertises": results["teleexpertises"],
        "telemonitoring": results["telemonitoring"],
    }


async def open_data(
    uow: UnitOfWork, filters: Filters, parameters: IndicatorParameters
) -> list[Row]:
    """Aggregates per département and month, no personal data, cells under 5 suppressed."""
    async with uow:
        q = IndicatorQueries(uow.session)
        rows: list[Row] = []
        for departement in await _departements(q, filters):
            scoped = _with_departement(filters, departement)
            for month in _per_month(await q.teleconsultations_by_month(scoped)):
                rows.append(
                    {
                        "departement": departement,
                        "month": month["month"],
                        "indicator": "teleconsultations",
                        "value": suppress_small(month["teleconsultations"]),
                    }
                )
            for site_row in await q.sites_by_departement(scoped):
                rows.append(
                    {
                        "departement": departement,
                        "month": "",
                        "indicator": "operational_sites",
                        "value": suppress_small(site_row["sites"]),
                    }
                )
        return rows


async def _departements(q: IndicatorQueries, filters: Filters) -> list[str]:
    return [row["departement"] for row in await q.sites_by_departement(filters)]


def _with_departement(filters: Filters, departement: str) -> Filters:
    return Filters(
        since=filters.since,
        until=filters.until,
        departement=departement,
        site_category=filters.site_category,
        deployment_model=filters.deployment_model,
        specialty=filters.specialty,
    )


def _bound(
    compute: Compute, filters: Filters, parameters: IndicatorParameters
) -> Callable[[IndicatorQueries], Awaitable[list[Row]]]:
    async def read(queries: IndicatorQueries) -> list[Row]:
        return await compute(queries, filters, parameters)

    return read


def _months(filters: Filters, monthly: list[Row]) -> int:
    if filters.since and filters.until:
        # The calendar of the caller's own offset: "2026-01-01T00:00Z" to "2026-04-01T00:00Z"
        # is three months, whatever Paris thinks of midnight UTC.
        last = (filters.until - timedelta(microseconds=1)).date()
        return months_between(filters.since.date(), last)
    return max(len(monthly), 1)


def _general_medicine_share(specialties: list[Row], sites: int, code: str) -> float:
    calling = next((row["sites"] for row in specialties if row["specialty_code"] == code), 0)
    return _ratio(calling, sites) or 0.0


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
