"""Free-slot search within a radius of a point or of a site, from directory coordinates."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from maillage.common.v1 import types_pb2 as types
from maillage.directory.v1 import events_pb2 as directory

if TYPE_CHECKING:
    from conftest import World

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
STRASBOURG = (48.5734, 7.7521)
NEAR_STRASBOURG = (48.5839, 7.7455)  # ~1.3 km away
COLMAR = (48.0794, 7.3585)  # ~63 km from Strasbourg


def tomorrow_at(hour: int) -> datetime:
    day = datetime.now(PARIS).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=PARIS)


async def _distance_world(world: World) -> tuple[str, str, str, str, str]:
    """A located site and three responders of a specialty of their own: one in town, one
    in Colmar, one with no known location."""
    tag = uuid.uuid4().hex[:6]
    specialty, site_id = f"SX{tag}", f"site-geo-{tag}"
    near, far, nowhere = f"pro-near-{tag}", f"pro-far-{tag}", f"pro-nowhere-{tag}"
    site = directory.SiteChanged(
        version=1,
        site=directory.Site(
            id=site_id,
            name="MSP",
            departement="67",
            active=True,
            location=types.GeoPoint(latitude=STRASBOURG[0], longitude=STRASBOURG[1]),
        ),
    )
    await world.publish((site, site_id))
    for pid, locations in ((near, (NEAR_STRASBOURG,)), (far, (COLMAR,)), (nowhere, ())):
        rpps = f"2{uuid.uuid4().int % 10**10:010d}"
        await world.add_responder(pid, rpps, specialty=specialty, locations=locations)
        answer = await world.client.put(
            f"/responders/{pid}/schedule", json=world.all_day, headers=world.coordinator()
        )
        assert answer.status_code == 200, answer.text
    await world.eventually(
        lambda: _site_known(world, site_id),
    )
    return specialty, site_id, near, far, nowhere


async def _site_known(world: World, site_id: str) -> bool:
    return bool(await world.scalar("SELECT count(*) FROM sites WHERE id = :i", i=site_id))


async def _search(world: World, **params: Any) -> Any:
    window = {"from": tomorrow_at(9).isoformat(), "to": tomorrow_at(10).isoformat()}
    return await world.client.get("/slots", params={**window, **params}, headers=world.nurse())


async def test_slots_within_a_radius_of_a_site_or_a_point(world: World) -> None:
    specialty, site_id, near, far, _nowhere = await _distance_world(world)

    close = await _search(world, specialty=specialty, near_site=site_id, radius_km=20)
    assert close.status_code == 200, close.text
    assert {s["responder_id"] for s in close.json()} == {near}
    assert 1.0 < close.json()[0]["distance_km"] < 2.0

    wide = (await _search(world, specialty=specialty, near_site=site_id, radius_km=100)).json()
    first_start = [s for s in wide if s["start"] == wide[0]["start"]]
    # Earliest first; at the same start, the nearest first. No location, never in range.
    assert [s["responder_id"] for s in first_start] == [near, far]
    assert 60 < first_start[1]["distance_km"] < 66

    around_colmar = await _search(
        world, specialty=specialty, near_lat=COLMAR[0], near_lon=COLMAR[1], radius_km=10
    )
    assert {s["responder_id"] for s in around_colmar.json()} == {far}

    everyone = (await _search(world, specialty=specialty)).json()
    assert all(s["distance_km"] is None for s in everyone)
    assert len({s["responder_id"] for s in everyone}) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"radius_km": 10}, "near_lat"),
        ({"near_lat": 48.5, "radius_km": 10}, "near_lon"),
        ({"near_lat": 48.5, "near_lon": 7.7}, "radius_km"),
        ({"near_site": "nowhere", "radius_km": 10}, "near_site"),
        ({"near_site": "x", "near_lat": 48.5, "near_lon": 7.7, "radius_km": 10}, "near_site"),
        ({"near_lat": 91, "near_lon": 7.7, "radius_km": 10}, "near_lat"),
        ({"near_lat": 48.5, "near_lon": 7.7, "radius_km": 0}, "radius_km"),
    ],
)
async def test_bad_distance_searches_name_the_field(
    world: World, params: dict[str, Any], field: str
) -> None:
    answer = await _search(world, **params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == [field]
