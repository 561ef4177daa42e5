"""The plan generator is pure: a seed gives one region and one week, always the same."""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import asdict
from pathlib import Path

import pytest

from maillage_demo import region
from maillage_demo.plan import (
    KioskOutage,
    OnDemand,
    Scheduled,
    apportion,
    build_plan,
    luhn_completed,
)

_COMMUNES_FILE = (
    Path(__file__).parents[3]
    / "services/directory/src/maillage_directory/domain/reference/communes.tsv.gz"
)


def test_the_same_seed_gives_the_same_plan() -> None:
    assert build_plan(7, sites=40, days=3) == build_plan(7, sites=40, days=3)
    assert asdict(build_plan(7).expected()) == asdict(build_plan(7).expected())


def test_another_seed_gives_another_plan() -> None:
    assert build_plan(7, sites=40, days=3) != build_plan(8, sites=40, days=3)


def test_the_default_region_is_shaped_like_grand_est() -> None:
    plan = build_plan(2024)
    per_departement = {code: 0 for code in region.DEPARTEMENTS}
    for site in plan.sites:
        per_departement[site.departement] += 1
    assert len(plan.sites) == 160
    assert per_departement == apportion(160, region.SITES_PER_DEPARTEMENT)
    assert 190 <= len(plan.responders) <= 210
    assert {r.specialty for r in plan.responders} == set(region.SPECIALTY_DEMAND)
    assert sum(len(site.kiosks) for site in plan.sites) >= 150
    assert {site.deployment_model for site in plan.sites} == set(region.DEPLOYMENT_MODELS)
    assert len(plan.days) == 7


def test_a_week_has_every_kind_of_activity() -> None:
    plan = build_plan(2024)
    scheduled = [a for a in plan.actions if isinstance(a, Scheduled)]
    assert {a.outcome for a in scheduled} == {"done", "cancelled", "noshow"}
    assert any(isinstance(a, OnDemand) for a in plan.actions)
    assert sum(isinstance(a, KioskOutage) for a in plan.actions) == 1
    expected = plan.expected()
    assert expected.teleconsultations == (
        sum(a.outcome == "done" for a in scheduled) + expected.on_demand_teleconsultations
    )
    assert expected.expertises == expected.expertises_answered + expected.expertises_rejected


def test_on_demand_requests_never_outnumber_responders_on_duty() -> None:
    for sites in (1, 10, 160):
        plan = build_plan(3, sites=sites, days=7)
        on_duty = sum(r.on_duty for r in plan.responders)
        assert plan.expected().on_demand_teleconsultations <= on_duty


def test_rpps_numbers_are_unique_and_carry_a_luhn_key() -> None:
    plan = build_plan(2024)
    numbers = [r.rpps for r in plan.responders]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert len(number) == 11
        assert luhn_completed(number[:-1]) == number


@pytest.mark.parametrize(
    ("total", "shares"), [(10, {"a": 5, "b": 3, "c": 2}), (3, {"a": 1, "b": 1})]
)
def test_apportion_splits_the_whole_total(total: int, shares: dict[str, int]) -> None:
    assert sum(apportion(total, shares).values()) == total


def test_communes_are_in_the_official_list_with_their_departement() -> None:
    rows = csv.DictReader(
        io.StringIO(gzip.decompress(_COMMUNES_FILE.read_bytes()).decode()), delimiter="\t"
    )
    official = {row["code"]: (row["name"], row["departement"]) for row in rows}
    for commune in region.COMMUNES:
        assert official[commune.insee] == (commune.name, commune.departement)
    assert {c.departement for c in region.COMMUNES} == set(region.DEPARTEMENTS)


def test_a_plan_needs_sites_and_days() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_plan(1, sites=0)


def test_no_kiosk_raises_two_on_demand_requests() -> None:
    # An accepted request reserves its kiosk for a real-time slot: a second one would clash.
    for sites, days in ((10, 1), (160, 7)):
        kiosks = [
            a.kiosk
            for a in build_plan(5, sites=sites, days=days).actions
            if isinstance(a, OnDemand)
        ]
        assert kiosks
        assert len(set(kiosks)) == len(kiosks)
