"""Headline indicators for Prometheus, read from the projections on scrape."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_statistics.db.indicators import (
    IndicatorQueries,
    headline_acts,
    headline_fleet,
    headline_sites,
)
from maillage_statistics.domain.rules import Filters
from maillage_statistics.use_cases.indicators import INDICATORS, IndicatorParameters


@dataclass(frozen=True, slots=True)
class HeadlineSnapshot:
    """Label tuples → values, ready to be exposed as metric families."""

    acts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    sites: dict[tuple[str, str], int] = field(default_factory=dict)
    usage: dict[tuple[str, str], int] = field(default_factory=dict)
    kiosks_online: dict[str, int] = field(default_factory=dict)
    alerts_open: dict[str, int] = field(default_factory=dict)


async def headline_snapshot(uow: UnitOfWork, parameters: IndicatorParameters) -> HeadlineSnapshot:
    """Read every headline indicator in one read-only transaction."""
    async with uow:
        session = uow.session
        acts = {
            (r["departement"], r["site_category"], r["specialty"], r["act"]): r["acts"]
            for r in await headline_acts(session)
        }
        sites = {
            (r["departement"], r["site_category"]): r["sites"]
            for r in await headline_sites(session)
        }
        usage_rows = await INDICATORS["site-usage"](
            IndicatorQueries(session), Filters(), parameters
        )
        usage = Counter((row["departement"], row["status"]) for row in usage_rows)
        fleet = await headline_fleet(
            session, parameters.now() - timedelta(seconds=parameters.kiosk_online_seconds)
        )
        return HeadlineSnapshot(
            acts=acts,
            sites=sites,
            usage=dict(usage),
            kiosks_online={r["departement"]: r["online"] for r in fleet},
            alerts_open={r["departement"]: r["alerts_open"] for r in fleet},
        )
