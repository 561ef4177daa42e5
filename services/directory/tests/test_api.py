"""The directory against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from maillage.directory.v1 import events_pb2
from maillage_devstack.pytest_plugin import Mint, ServiceApp

from directory_testing import new_rpps, professional, site

pytestmark = pytest.mark.integration
PACKAGE = "maillage_directory"


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def _create(client: httpx.AsyncClient, token: str, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body, headers=auth(token))
    assert response.status_code == 201, response.text
    return response


async def _snapshots(bootstrap: str, topic: str, key: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    found += [r.value for r in records if r.key == key.encode() and r.value]
    finally:
        await consumer.stop()
    return found


async def test_professional_lifecycle_with_etags_history_and_snapshot_events(
    service_app: ServiceApp, mint: Mint, kafka_bootstrap_servers: str
) -> None:
    coordinator = mint("coordinator", subject="coord-1")
    async with service_app(PACKAGE) as (_, client):
        body = professional()
        created = await _create(client, coordinator, "/professionals", body)
        pro = created.json()
        assert created.headers["ETag"] == '"1"'
        assert pro["specialty_codes"] == ["SM15"]

        path = f"/professionals/{pro['id']}"
        changed = {**body, "family_name": "Muller-Weiss"}
        missing = await client.put(path, json=changed, headers=auth(coordinator))
        assert missing.status_code == 428
        stale = await client.put(
            path, json=changed, headers=auth(coordinator, **{"If-Match": '"7"'})
        )
        assert stale.status_code == 412
        assert stale.headers["ETag"] == '"1"'
        updated = await client.put(
            path, json=changed, headers=auth(coordinator, **{"If-Match": '"1"'})
        )
        assert updated.status_code == 200, updated.text
        assert updated.headers["ETag"] == '"2"'
        deactivated = await client.post(
            f"{path}/deactivate", headers=auth(coordinator, **{"If-Match": '"2"'})
        )
        assert deactivated.json()["active"] is False

        history = (await client.get(f"{path}/history", headers=auth(coordinator))).json()
        assert [h["change"] for h in history] == ["created", "updated", "deactivated"]
        assert history[1]["actor"] == "coord-1"
        assert history[1]["diff"]["family_name"] == ["Muller", "Muller-Weiss"]

        public = (await client.get(path)).json()
        assert public["contact_phone"] is None
        assert public["mssante_address"] is None
        private = (await client.get(path, headers=auth(coordinator))).json()
        assert private["contact_phone"] == "+33388000000"

        records = await _snapshots(kafka_bootstrap_servers, "directory.professionals", pro["id"], 3)
        events = [events_pb2.ProfessionalChanged.FromString(raw) for raw in records]
        assert [e.version for e in events] == [1, 2, 3]
        assert events[1].professional.family_name == "Muller-Weiss"
        assert events[2].change == events_pb2.CHANGE_DEACTIVATED
        assert events[2].professional.active is False


async def test_bad_input_names_the_field_and_writes_nothing(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):
        cases = {
            "rpps": professional(rpps="12345678901"),
            "specialty_codes.0": professional(specialty_codes=["astrologie"]),
            "practice_locations.0.location": professional(
                practice_locations=[
                    {"commune_insee": "67482", "location": {"latitude": 52.5, "longitude": 13.4}}
                ]
            ),
        }
        for field, body in cases.items():
            response = await client.post("/professionals", json=body, headers=auth(coordinator))
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert field in [e["field"] for e in response.json()["errors"]]
        bad_sites = {
            "finess": site(finess="670780001"),
            "siret": site(siret="73282932000075"),
            "commune_insee": site(commune_insee="99999"),
        }
        for field, body in bad_sites.items():
            response = await client.post("/sites", json=body, headers=auth(coordinator))
            assert response.status_code == 422
            assert [e["field"] for e in response.json()["errors"]] == [field]

        body = professional()
        await _create(client, coordinator, "/professionals", body)
        duplicate = await client.post(
            "/professionals", json={**body, "family_name": "Other"}, headers=auth(coordinator)
        )
        assert duplicate.status_code == 409
        assert duplicate.json()["errors"][0]["field"] == "rpps"
        found = (await client.get("/search/professionals", params={"limit": 200})).json()
        assert [p["professional"]["rpps"] for p in found["items"]] == [body["rpps"]]


async def test_roles_and_site_scoping(service_app: ServiceApp, mint: Mint) -> None:
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):
        anonymous = await client.post("/professionals", json=professional())
        assert anonymous.status_code == 401
        nurse_create = await client.post(
            "/professionals", json=professional(), headers=auth(mint("nurse", site_id="x"))
        )
        assert nurse_create.status_code == 403

        mine = (await _create(client, coordinator, "/sites", site())).json()
        other = (await _create(client, coordinator, "/sites", site(name="Autre"))).json()
        nurse = mint("nurse", site_id=mine["id"])
        edit = await client.put(
            f"/sites/{other['id']}",
            json=site(name="Hacked"),
            headers=auth(nurse, **{"If-Match": '"1"'}),
        )
        assert edit.status_code == 404
        own = await client.put(
            f"/sites/{mine['id']}",
            json=site(name="EHPAD renommé"),
            headers=auth(nurse, **{"If-Match": '"1"'}),
        )
        assert own.status_code == 200

        pro = (await _create(client, coordinator, "/professionals", professional())).json()
        someone_else = mint("responder", rpps=new_rpps())
        denied = await client.put(
            f"/professionals/{pro['id']}",
            json={**professional(rpps=pro["rpps"])},
            headers=auth(someone_else, **{"If-Match": '"1"'}),
        )
        assert denied.status_code == 403
        themselves = mint("responder", rpps=pro["rpps"])
        allowed = await client.put(
            f"/professionals/{pro['id']}",
            json=professional(rpps=pro["rpps"], languages=["fr", "en"]),
            headers=auth(themselves, **{"If-Match": '"1"'}),
        )
        assert allowed.status_code == 200, allowed.text


async def test_kiosk_enrolment_credential_once_hashed_and_revocable(
    service_app: ServiceApp, mint: Mint, kafka_bootstrap_servers: str
) -> None:
    coordinator = mint("coordinator")
    service = mint("service")
    async with service_app(PACKAGE) as (app, client):
        home = (await _create(client, coordinator, "/sites", site())).json()
        other = (await _create(client, coordinator, "/sites", site(name="Autre"))).json()
        nurse = mint("nurse", site_id=home["id"])
        body = {"site_id": other["id"], "label": "Cabine 1", "devices": [{"kind": "ecg"}]}
        enrolled = await _create(client, nurse, "/kiosks", body)
        payload = enrolled.json()
        kiosk = payload["kiosk"]
        assert kiosk["site_id"] == home["id"]  # the token's site, not the body's
        secret, key_id = payload["secret"], payload["key_id"]

        async with app.state.runtime.engine.connect() as connection:
            stored = (
                await connection.execute(text("SELECT credential_hash, data::text FROM kiosk"))
            ).one()
        assert secret not in stored[0]
        assert secret not in stored[1]

        verify = {"key_id": key_id, "secret": secret}
        ok = await client.post("/kiosks/credentials/verify", json=verify, headers=auth(service))
        assert ok.json() == {"valid": True, "kiosk_id": kiosk["id"], "site_id": home["id"]}
        wrong = {"key_id": key_id, "secret": secret + "x"}
        bad = await client.post("/kiosks/credentials/verify", json=wrong, headers=auth(service))
        assert bad.json()["valid"] is False

        other_nurse = mint("nurse", site_id=other["id"])
        hidden = await client.get(f"/kiosks/{kiosk['id']}", headers=auth(other_nurse))
        assert hidden.status_code == 404
        listed = await client.get("/kiosks", params={"site_id": home["id"]}, headers=auth(nurse))
        assert [k["id"] for k in listed.json()] == [kiosk["id"]]
        foreign = await client.get(
            "/kiosks", params={"site_id": home["id"]}, headers=auth(other_nurse)
        )
        assert foreign.status_code == 404

        closed = await client.post(
            f"/sites/{home['id']}/deactivate", headers=auth(coordinator, **{"If-Match": '"1"'})
        )
        assert closed.status_code == 200
        at_closed_site = await client.post(
            "/kiosks/credentials/verify", json=verify, headers=auth(service)
        )
        assert at_closed_site.json()["valid"] is False
        await client.post(
            f"/sites/{home['id']}/reactivate", headers=auth(coordinator, **{"If-Match": '"2"'})
        )

        revoked = await client.post(
            f"/kiosks/{kiosk['id']}/credential/revoke", headers=auth(nurse, **{"If-Match": '"1"'})
        )
        assert revoked.json()["credential_revoked"] is True
        after = await client.post("/kiosks/credentials/verify", json=verify, headers=auth(service))
        assert after.json()["valid"] is False

        records = await _snapshots(kafka_bootstrap_servers, "directory.kiosks", kiosk["id"], 2)
        events = [events_pb2.KioskChanged.FromString(raw) for raw in records]
        assert [e.kiosk.credential_revoked for e in events] == [False, True]
        assert events[0].kiosk.credential_key_id == key_id
        assert all(secret not in raw.decode("utf-8", "replace") for raw in records)


async def test_search_filters_local_first_public_fields_and_map(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    strasbourg = {"commune_insee": "67482", "location": {"latitude": 48.5734, "longitude": 7.7521}}
    metz = {"commune_insee": "57463", "location": {"latitude": 49.1193, "longitude": 6.1757}}
    nancy = {"commune_insee": "54395", "location": {"latitude": 48.6921, "longitude": 6.1844}}
    async with service_app(PACKAGE) as (_, client):
        metz_site = (await _create(client, coordinator, "/sites", site())).json()
        pros = {
            "strasbourg": professional(
                family_name="Adler", departements=["67"], practice_locations=[strasbourg]
            ),
            "nancy": professional(
                family_name="Bauer", departements=["54"], practice_locations=[nancy]
            ),
            "metz": professional(
                family_name="Weber", departements=["57"], practice_locations=[metz]
            ),
            "psy": professional(
                family_name="Zimmer",
                specialty_codes=["psychiatrie"],
                departements=["57"],
                practice_locations=[metz],
            ),
            "slow": professional(
                family_name="Klein",
                departements=["57"],
                practice_locations=[metz],
                usual_expertise_response_hours=240,
                languages=["fr"],
            ),
        }
        for body in pros.values():
            await _create(client, coordinator, "/professionals", body)

        def names(response: httpx.Response) -> list[str]:
            assert response.status_code == 200, response.text
            return [i["professional"]["family_name"] for i in response.json()["items"]]

        near = await client.get(
            "/search/professionals",
            params={"specialty": "SM15", "near_site": metz_site["id"], "radius_km": 200},
        )
        # Same département first (Metz: Weber, Klein), then by distance (Nancy, Strasbourg).
        assert names(near)[:2] in (["Weber", "Klein"], ["Klein", "Weber"])
        assert names(near)[2:] == ["Bauer", "Adler"]
        assert all(i["professional"]["contact_phone"] is None for i in near.json()["items"])

        within = await client.get(
            "/search/professionals",
            params={"lat": 49.1193, "lon": 6.1757, "radius_km": 60, "specialty": "dermatologie"},
        )
        assert set(names(within)) == {"Weber", "Klein", "Bauer"}
        fast_german = await client.get(
            "/search/professionals",
            params={"departement": "57", "language": "de", "max_response_hours": 72},
        )
        assert names(fast_german) == ["Weber", "Zimmer"]
        page = await client.get("/search/professionals", params={"limit": 2})
        assert len(page.json()["items"]) == 2
        assert page.json()["next_offset"] == 2
        private = await client.get(
            "/search/professionals",
            params={"act": "teleexpertise", "departement": "67"},
            headers=auth(coordinator),
        )
        assert private.json()["items"][0]["professional"]["contact_phone"] == "+33388000000"

        bad = await client.get("/search/professionals", params={"specialty": "astrologie"})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "specialty"
        outside = await client.get("/search/sites", params={"lat": 52.5, "lon": 13.4})
        assert outside.status_code == 422

        geo = (await client.get("/map", params={"departement": "57"})).json()
        assert geo["type"] == "FeatureCollection"
        kinds = sorted(f["properties"]["kind"] for f in geo["features"])
        assert kinds == ["professional"] * 3 + ["site"]
        assert geo["features"][0]["geometry"]["coordinates"] == [6.1757, 49.1193]


async def test_csv_import_reports_rows_and_is_idempotent(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    good, other = new_rpps(), new_rpps()
    csv = (
        "rpps;family_name;given_name;specialty_codes;acts;departements;commune_insee;latitude;longitude\n"
        f"{good};Roth;Paul;SM15|cardiologie;teleexpertise;67;67482;48.57;7.75\n"
        f"{other};Fuchs;Eva;SM42;teleconsultation;68;68224;47.75;7.34\n"
        "12345678901;Faux;Numero;SM15;teleexpertise;67;67482;48.57;7.75\n"
        f"{new_rpps()};Loin;Berlin;SM15;teleexpertise;67;67482;52.5;13.4\n"
        f"{good};Roth;Doublon;SM15;teleexpertise;67;67482;48.57;7.75\n"
    ).encode()
    headers = auth(coordinator, **{"Content-Type": "text/csv"})
    async with service_app(PACKAGE) as (_, client):
        first = await client.post("/imports/professionals.csv", content=csv, headers=headers)
        assert first.status_code == 200, first.text
        report = first.json()
        assert (report["created"], report["rejected"]) == (2, 3)
        reasons = {r["row"]: [e["field"] for e in r["errors"]] for r in report["rows"]}
        assert reasons[4] == ["rpps"]
        assert reasons[5] == ["practice_locations.0.location"]
        assert reasons[6] == ["rpps"]

        again = (
            await client.post("/imports/professionals.csv", content=csv, headers=headers)
        ).json()
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
        found = (await client.get("/search/professionals", params={"limit": 200})).json()
        assert sorted(i["professional"]["rpps"] for i in found["items"]) == sorted([good, other])

        broken = await client.post(
            "/imports/professionals.csv", content=b"name;surname\nx;y\n", headers=headers
        )
        assert broken.status_code == 422
        assert broken.json()["errors"][0]["field"] == "file"


async def test_site_csv_import_keyed_by_finess_and_idempotent(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    csv = (
        b"name,finess,category,commune_insee,latitude,longitude,rural,specialties_needed\n"
        b"EHPAD A,670780055,ehpad,67482,48.57,7.75,non,SM15|psychiatrie\n"
        b"MSP B,,msp,57463,49.12,6.18,oui,\n"
        b"Bad,670780056,ehpad,67482,48.57,7.75,non,\n"
        b"Nowhere,,pharmacie,99999,48.57,7.75,peut-etre,\n"
    )
    headers = auth(coordinator, **{"Content-Type": "text/csv"})
    async with service_app(PACKAGE) as (_, client):
        report = (await client.post("/imports/sites.csv", content=csv, headers=headers)).json()
        assert (report["created"], report["rejected"]) == (2, 2)
        reasons = {r["row"]: sorted(e["field"] for e in r["errors"]) for r in report["rows"]}
        assert reasons[4] == ["finess"]
        assert reasons[5] == ["rural"]
        again = (await client.post("/imports/sites.csv", content=csv, headers=headers)).json()
        assert (again["created"], again["unchanged"]) == (0, 2)
        found = (await client.get("/search/sites", params={"departement": "67"})).json()
        assert [s["site"]["specialties_needed"] for s in found["items"]] == [["SM15", "SM42"]]
