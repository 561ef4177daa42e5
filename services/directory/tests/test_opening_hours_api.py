"""Structured opening hours through the API, the FHIR view and the 0003 migration."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from maillage_common.db.migrations import upgrade
from maillage_devstack.pytest_plugin import Mint, ServiceApp
from maillage_directory.db.migrate import MIGRATIONS
from maillage_directory.settings import DirectorySettings

from directory_testing import site

pytestmark = pytest.mark.integration
PACKAGE = "maillage_directory"
HOURS = {
    "weekly": [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "08:00", "closes": "12:00"},
        {"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "13:30", "closes": "17:00"},
    ],
    "exceptions": [{"date": "2026-12-25", "reason": "Noël"}],
}


async def test_site_hours_are_validated_stored_and_shown_as_fhir_available_time(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = {"Authorization": f"Bearer {mint('coordinator')}"}
    async with service_app(PACKAGE) as (_, client):
        overlapping = {
            "weekly": [
                {"days": ["mon"], "opens": "08:00", "closes": "14:00"},
                {"days": ["mon"], "opens": "13:30", "closes": "17:00"},
            ]
        }
        refused = await client.post(
            "/sites", json=site(opening_hours=overlapping), headers=coordinator
        )
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            {"field": "opening_hours.weekly.1", "reason": "overlaps opening_hours.weekly.0 on mon"}
        ]
        created = await client.post("/sites", json=site(opening_hours=HOURS), headers=coordinator)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["opening_hours"]["timezone"] == "Europe/Paris"
        assert body["opening_hours"]["weekly"][1]["opens"] == "13:30"

        resource = (await client.get(f"/fhir/Location/{body['id']}")).json()
        assert resource["availableTime"][0] == {
            "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
            "availableStartTime": "08:00:00",
            "availableEndTime": "12:00:00",
        }
        assert resource["notAvailable"][0]["description"] == "Noël"


async def test_migration_converts_free_text_hours_and_the_geriatrics_code(
    database_url: str, database_schema: str
) -> None:
    # Written as the 0002 schema held them: free-text hours, SM53 meaning gériatrie.
    settings = DirectorySettings(
        DATABASE_URL=database_url,
        database_schema=database_schema,
        KAFKA_BOOTSTRAP_SERVERS="unused:9092",  # migrations never reach the broker
        AUTH_JWKS_URL="file:///unused",
        AUTH_ISSUER="test",
    )
    await asyncio.to_thread(upgrade, settings, MIGRATIONS, "0002")
    engine = create_async_engine(
        settings.database_url,
        connect_args={"server_settings": {"search_path": settings.owned_schema}},
    )
    now = datetime.now(UTC)
    old = {
        "parsable": "Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00",
        "free": "sur rendez-vous le matin",
        "empty": "",
    }
    ids = {name: uuid.uuid4() for name in old}
    insert = text(
        "INSERT INTO site (id, name, finess, siret, category, commune_insee, departement, "
        "latitude, longitude, specialties_needed, technical_vendor, "
        "receives_external_patients, version, active, data, created_at, updated_at) VALUES "
        "(:id, :name, NULL, NULL, 'ehpad', '57463', '57', 49.1, 6.2, :codes, '', false, 1, "
        "true, CAST(:data AS jsonb), :now, :now)"
    )
    try:
        async with engine.begin() as connection:
            for name, hours in old.items():
                data = {
                    **site(name=name),
                    "opening_hours": hours,
                    "specialties_needed": ["SM15", "SM53"],
                }
                await connection.execute(
                    insert,
                    {
                        "id": ids[name],
                        "name": name,
                        "codes": ["SM15", "SM53"],
                        "data": json.dumps(data),
                        "now": now,
                    },
                )
        await asyncio.to_thread(upgrade, settings, MIGRATIONS)
        async with engine.connect() as connection:
            rows = {
                row.name: row
                for row in await connection.execute(
                    text("SELECT name, specialties_needed, data FROM site")
                )
            }
    finally:
        await engine.dispose()
    parsed = rows["parsable"].data["opening_hours"]
    assert [(e["days"], e["opens"], e["closes"]) for e in parsed["weekly"]] == [
        (["mon", "tue", "wed", "thu", "fri"], "08:00", "12:00"),
        (["mon", "tue", "wed", "thu", "fri"], "14:00", "18:00"),
        (["sat"], "09:00", "12:00"),
    ]
    assert rows["free"].data["opening_hours"]["note"] == "sur rendez-vous le matin"
    assert rows["free"].data["opening_hours"]["weekly"] == []
    assert rows["empty"].data["opening_hours"]["timezone"] == "Europe/Paris"
    assert rows["parsable"].specialties_needed == ["SM15", "SM18"]
    assert rows["parsable"].data["specialties_needed"] == ["SM15", "SM18"]
