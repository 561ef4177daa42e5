"""FHIR R4 read views and bundle import against the real database."""

from __future__ import annotations

from typing import Any

import pytest

from maillage_devstack.pytest_plugin import Mint, ServiceApp

from directory_testing import new_rpps, professional, site

pytestmark = pytest.mark.integration
PACKAGE = "maillage_directory"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
R38 = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bundle(*practitioners: tuple[str, str, str, list[str]]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for index, (rpps, family, given, specialties) in enumerate(practitioners):
        entries.append(
            {
                "resource": {
                    "resourceType": "Practitioner",
                    "id": f"p{index}",
                    "identifier": [{"system": IDNPS, "value": "8" + rpps}],
                    "name": [{"family": family, "given": [given]}],
                }
            }
        )
        entries.append(
            {
                "resource": {
                    "resourceType": "PractitionerRole",
                    "id": f"r{index}",
                    "practitioner": {"reference": f"Practitioner/p{index}"},
                    "specialty": [{"coding": [{"system": R38, "code": c}]} for c in specialties],
                }
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


async def test_fhir_views_redact_contacts_for_the_public(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):
        pro = (
            await client.post("/professionals", json=professional(), headers=auth(coordinator))
        ).json()
        place = (await client.post("/sites", json=site(), headers=auth(coordinator))).json()

        practitioner = await client.get(f"/fhir/Practitioner/{pro['id']}")
        assert practitioner.headers["content-type"] == "application/fhir+json"
        body = practitioner.json()
        assert body["identifier"] == [{"system": IDNPS, "value": "8" + pro["rpps"]}]
        assert "telecom" not in body
        private = (
            await client.get(f"/fhir/Practitioner/{pro['id']}", headers=auth(coordinator))
        ).json()
        assert private["telecom"][0]["value"] == "+33388000000"

        role = (await client.get(f"/fhir/PractitionerRole/{pro['id']}")).json()
        assert role["specialty"][0]["coding"][0]["code"] == "SM15"
        location = (await client.get(f"/fhir/Location/{place['id']}")).json()
        assert location["position"] == {"latitude": 49.1193, "longitude": 6.1757}
        organization = (await client.get(f"/fhir/Organization/{place['id']}")).json()
        assert organization["name"] == "EHPAD Les Tilleuls"

        enrolled = await client.post(
            "/kiosks",
            json={"site_id": place["id"], "label": "Cabine", "devices": [{"kind": "otoscope"}]},
            headers=auth(coordinator),
        )
        kiosk_id = enrolled.json()["kiosk"]["id"]
        assert (await client.get(f"/fhir/Device/{kiosk_id}")).status_code == 401
        device = (await client.get(f"/fhir/Device/{kiosk_id}", headers=auth(coordinator))).json()
        assert device["owner"] == {"reference": f"Organization/{place['id']}"}
        missing = await client.get("/fhir/Practitioner/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404


async def test_fhir_bundle_import_reports_entries_and_is_idempotent(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    good = new_rpps()
    document = bundle(
        (good, "Schmitt", "Lea", ["SM42"]),
        ("12345678901", "Faux", "Numero", ["SM42"]),
        (new_rpps(), "Inconnue", "Spec", ["SM99"]),
    )
    async with service_app(PACKAGE) as (_, client):
        first = await client.post("/imports/fhir", json=document, headers=auth(coordinator))
        assert first.status_code == 200, first.text
        report = first.json()
        assert (report["created"], report["rejected"]) == (1, 2)
        fields = sorted(e["field"] for r in report["rows"] for e in r["errors"])
        assert fields == ["rpps", "specialty_codes.0"]
        again = (
            await client.post("/imports/fhir", json=document, headers=auth(coordinator))
        ).json()
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 1)

        not_a_bundle = await client.post(
            "/imports/fhir", json={"resourceType": "Patient"}, headers=auth(coordinator)
        )
        assert not_a_bundle.status_code == 422
        assert not_a_bundle.json()["errors"][0]["field"] == "resourceType"


async def test_fhir_bundle_imports_organizations_placed_by_their_location(
    service_app: ServiceApp, mint: Mint
) -> None:
    coordinator = mint("coordinator")
    async with service_app(PACKAGE) as (_, client):
        place = (
            await client.post("/sites", json=site(finess="670780055"), headers=auth(coordinator))
        ).json()
        organization = (await client.get(f"/fhir/Organization/{place['id']}")).json()
        location = (await client.get(f"/fhir/Location/{place['id']}")).json()
        newcomer = {**organization, "id": "new", "name": "MSP Nouvelle", "identifier": []}
        newcomer_place = {
            **location,
            "id": "new-place",
            "managingOrganization": {"reference": "Organization/new"},
        }
        homeless = {**organization, "id": "lost", "name": "Sans lieu", "identifier": []}
        document = {
            "resourceType": "Bundle",
            "entry": [
                {"resource": organization},
                {"resource": location},
                {"resource": newcomer},
                {"resource": newcomer_place},
                {"resource": homeless},
            ],
        }
        report = (
            await client.post("/imports/fhir", json=document, headers=auth(coordinator))
        ).json()
        statuses = {r["row"]: r["status"] for r in report["rows"]}
        assert statuses == {0: "unchanged", 2: "created", 4: "rejected"}
        kept = (await client.get(f"/sites/{place['id']}")).json()
        assert kept["specialties_needed"] == ["SM15"]  # not carried by FHIR: kept
        again = (
            await client.post("/imports/fhir", json=document, headers=auth(coordinator))
        ).json()
        assert (again["created"], again["unchanged"], again["rejected"]) == (0, 2, 1)
