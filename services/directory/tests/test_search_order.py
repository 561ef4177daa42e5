"""Search pages against an order computed in Python: local first, distance, name, id.

The search picks each page on narrow columns then joins the rows back; walking every page
must give exactly the order the rules define, with no row lost or repeated across pages.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_directory.domain.geography import haversine_km

from directory_testing import professional, site

pytestmark = pytest.mark.integration
PACKAGE = "maillage_directory"
# (commune, its département, latitude, longitude)
PLACES = [
    ("57463", "57", 49.1193, 6.1757),
    ("54395", "54", 48.6921, 6.1844),
    ("67482", "67", 48.5734, 7.7521),
]
METZ = (49.1193, 6.1757)


async def _pages(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    offset: int | None = 0
    while offset is not None:
        response = await client.get(path, params={**params, "limit": 4, "offset": offset})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        offset = response.json()["next_offset"]
    return items


async def test_pages_follow_local_first_then_distance_name_and_id(
    service_app: ServiceApp, mint: Mint
) -> None:
    rng = random.Random(3)
    token = mint("coordinator")
    headers = {"Authorization": f"Bearer {token}"}
    async with service_app(PACKAGE) as (_, client):
        metz_site = (await client.post("/sites", json=site(), headers=headers)).json()
        rows: list[dict[str, Any]] = []
        point = METZ
        for index in range(18):
            commune, departement, latitude, longitude = rng.choice(PLACES)
            # Every third one shares the previous one's name and place: ties broken by id.
            if index % 3 == 2:
                latitude, longitude = point
            else:
                latitude += rng.uniform(-0.2, 0.2)
                longitude += rng.uniform(-0.2, 0.2)
                point = (latitude, longitude)
            name = ["Adler", "Bauer", "Weber"][index // 3 % 3]
            departements = sorted({departement, rng.choice(["57", "54", "67"])})
            body = professional(
                family_name=name,
                departements=departements,
                practice_locations=[
                    {
                        "commune_insee": commune,
                        "location": {"latitude": latitude, "longitude": longitude},
                    }
                ],
            )
            created = await client.post("/professionals", json=body, headers=headers)
            assert created.status_code == 201, created.text
            rows.append(
                {
                    "id": created.json()["id"],
                    "name": name,
                    "distance": haversine_km(*METZ, latitude, longitude),
                    "departements": {departement, *departements},
                }
            )

        # No practice location (no point, no département of its own): never local by accident.
        body = professional(family_name="Adler", departements=["67"], practice_locations=[])
        created = await client.post("/professionals", json=body, headers=headers)
        assert created.status_code == 201, created.text
        rows.append(
            {
                "id": created.json()["id"],
                "name": "Adler",
                "distance": float("inf"),
                "departements": {"67"},
            }
        )

        def ids(items: list[Any]) -> list[str]:
            return [item["professional"]["id"] for item in items]

        # Around a site: its département (57) first, then distance, name, id.
        near = await _pages(
            client,
            "/search/professionals",
            {"near_site": metz_site["id"], "radius_km": 300, "specialty": "dermatologie"},
        )
        wanted = sorted(
            (r for r in rows if r["distance"] <= 300),
            key=lambda r: ("57" not in r["departements"], r["distance"], r["name"], r["id"]),
        )
        assert ids(near) == [r["id"] for r in wanted]
        for item, row in zip(near, wanted, strict=True):
            assert item["distance_km"] == pytest.approx(row["distance"], abs=1e-3)

        # A bare point: distance, then name and id, within the radius only.
        around = await _pages(
            client, "/search/professionals", {"lat": METZ[0], "lon": METZ[1], "radius_km": 80}
        )
        wanted = sorted(
            (r for r in rows if r["distance"] <= 80),
            key=lambda r: (r["distance"], r["name"], r["id"]),
        )
        assert ids(around) == [r["id"] for r in wanted]

        # No point: the first département asked first, then name and id.
        listed = await _pages(client, "/search/professionals", {"departement": ["54", "67"]})
        wanted = sorted(
            (r for r in rows if r["departements"] & {"54", "67"}),
            key=lambda r: ("54" not in r["departements"], r["name"], r["id"]),
        )
        assert ids(listed) == [r["id"] for r in wanted]
