"""Reading the outcome back from the statistics service's public API (the observatory)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from maillage_demo.client import Endpoints, Tokens, call
from maillage_demo.plan import Expected

SETTLE_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Observed:
    """The observatory's counts for what the demo did, in the shape of `Expected`."""

    sites: int
    teleconsultations: int
    scheduled_teleconsultations: int
    on_demand_teleconsultations: int
    assisted_teleconsultations: int
    expertises: int
    expertises_answered: int
    expertises_rejected: int
    measurements: int
    cancellations: int
    no_shows: int
    kiosk_outages: int


def _count(rows: Any, key: str, value: str) -> int:
    return sum(int(row.get("teleconsultations", 0)) for row in rows if row.get(key) == value)


def _outcome(observatory: Mapping[str, Any], outcome: str) -> int:
    rows = observatory["teleexpertises"]
    return sum(int(row["teleexpertises"]) for row in rows if row["outcome"] == outcome)


def observed_counts(observatory: Mapping[str, Any]) -> Observed:
    tc = observatory["teleconsultations"]
    rows = tc["by_mode_and_assistance"]
    indicators = observatory.get("indicators", {})
    quality = (indicators.get("quality") or [{}])[0]
    alerts = indicators.get("alerts", [])
    return Observed(
        sites=int(observatory["sites_deployed"]),
        teleconsultations=int(tc["total"]),
        scheduled_teleconsultations=_count(rows, "mode", "scheduled"),
        on_demand_teleconsultations=_count(rows, "mode", "on_demand"),
        assisted_teleconsultations=_count(rows, "assistance", "assisted"),
        expertises=sum(int(row["teleexpertises"]) for row in observatory["teleexpertises"]),
        expertises_answered=_outcome(observatory, "answered"),
        expertises_rejected=_outcome(observatory, "rejected"),
        measurements=sum(int(row["measurements"]) for row in observatory["telemonitoring"]),
        cancellations=int(quality["appointments_cancelled"]),
        no_shows=int(quality["appointments_no_show"]),
        # An outage is one offline alert, raised then cleared when the kiosk came back.
        kiosk_outages=sum(
            int(row["raised"]) - int(row["open"])
            for row in alerts
            if row["kind"] == "kiosk_offline"
        ),
    )


def expected_counts(expected: Expected) -> Observed:
    fields = asdict(expected)
    return Observed(**{name: fields[name] for name in Observed.__dataclass_fields__})


async def read_observatory(
    client: httpx.AsyncClient, endpoints: Endpoints, tokens: Tokens
) -> dict[str, Any]:
    response = await call(
        client,
        "GET",
        f"{endpoints['statistics']}/v1/observatory",
        headers=tokens.coordinator(),
    )
    observatory: dict[str, Any] = response.json()
    # Beside the bilan's layout: the quality (cancellations, no-shows) and alert indicators.
    observatory["indicators"] = {}
    for name in ("quality", "alerts"):
        indicator = await call(
            client,
            "GET",
            f"{endpoints['statistics']}/v1/indicators/{name}",
            headers=tokens.coordinator(),
        )
        observatory["indicators"][name] = indicator.json()["rows"]
    return observatory


async def settled_observatory(
    endpoints: Endpoints,
    tokens: Tokens,
    target: Observed,
    give_up_after: float = SETTLE_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """The observatory once its projections caught up with `target` (events are folded
    asynchronously), or as it stands after `give_up_after` seconds."""
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        deadline = asyncio.get_running_loop().time() + give_up_after
        while True:
            observatory = await read_observatory(client, endpoints, tokens)
            if observed_counts(observatory) == target:
                return observatory
            if asyncio.get_running_loop().time() > deadline:
                return observatory
            await asyncio.sleep(0.5)


def render_summary(observatory: Mapping[str, Any]) -> list[str]:
    """The observatory in the bilan's terms, for the terminal."""
    counts = observed_counts(observatory)
    tc = observatory["teleconsultations"]
    return [
        "Observatory (statistics service, GET /v1/observatory):",
        f"  sites deployed           {counts.sites}",
        "  sites by département     "
        + ", ".join(
            f"{row['departement']}: {row['sites']}" for row in observatory["sites_by_departement"]
        ),
        f"  teleconsultations        {counts.teleconsultations}"
        f" ({counts.scheduled_teleconsultations} scheduled,"
        f" {counts.on_demand_teleconsultations} on demand,"
        f" {counts.assisted_teleconsultations} assisted)",
        f"  monthly average          {tc.get('monthly_average')}",
        f"  tele-expertises          {counts.expertises} ({counts.expertises_answered} answered,"
        f" {counts.expertises_rejected} rejected)",
        f"  telemonitoring           {counts.measurements} measurements",
        f"  appointments             {counts.cancellations} cancelled, {counts.no_shows} no-shows",
        f"  kiosk outages            {counts.kiosk_outages} (offline alerts raised and cleared)",
        f"  general medicine share   {observatory.get('general_medicine_site_share')}",
        f"  site typology            {_shares(observatory.get('site_typology'))}",
        f"  territory coverage       {observatory.get('territory_coverage')}",
        f"  usage status             {observatory.get('usage_status')}",
    ]


def _shares(rows: Any) -> str:
    if not isinstance(rows, list):
        return str(rows)
    return ", ".join(
        f"{row.get('site_category', row.get('category', '?'))}: {row.get('sites', '?')}"
        for row in rows
    )
