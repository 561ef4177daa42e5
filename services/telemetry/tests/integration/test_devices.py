"""Connected devices: enrolment with a credential of their own, uploads from active devices
only, revocation that stops both the kiosk's and the device's own uploads."""

from __future__ import annotations

import uuid

import pytest

from maillage_devstack.pytest_plugin import Mint, ServiceApp

from telemetry_testing import bearer, device_id, enrol, item

pytestmark = pytest.mark.integration
PACKAGE = "maillage_telemetry"
DEVICE_BATCH = "/measurements/device-batch"


def _outcomes(body: dict[str, object]) -> list[tuple[str, list[str]]]:
    items = body["items"]
    assert isinstance(items, list)
    return [(i["outcome"], [e["field"] for e in i["errors"]]) for i in items]


async def test_a_device_uploads_with_its_own_credential_until_it_is_revoked(
    service_app: ServiceApp, mint: Mint
) -> None:
    kiosk_id, site_id = str(uuid.uuid4()), str(uuid.uuid4())
    patient, oxi, scale = f"pref-{uuid.uuid4().hex}", device_id("oxi"), device_id("scale")
    kiosk = bearer(mint("kiosk", subject=kiosk_id, site_id=site_id))
    async with service_app(PACKAGE) as (_, client):
        nurse = bearer(mint("nurse", site_id=site_id))
        granted = await client.put(f"/consents/{patient}", json={"granted": True}, headers=nurse)
        assert granted.status_code == 200
        enrolled = await enrol(client, kiosk, kiosk_id, oxi)
        assert enrolled["active"] is True
        assert enrolled["site_id"] == site_id
        credential = {"X-Device-Credential": enrolled["credential"]}
        await enrol(client, nurse, kiosk_id, scale, "scale")

        # Active elsewhere: the device must be revoked there first.
        other_kiosk = str(uuid.uuid4())
        coordinator = bearer(mint("coordinator"))
        taken = await client.post(
            f"/kiosks/{other_kiosk}/devices",
            json={"device_id": oxi, "kind": "oximeter"},
            headers=coordinator,
        )
        assert taken.status_code == 409
        # Another kiosk, or another site's nurse, cannot touch this kiosk's devices.
        stranger = bearer(mint("kiosk", subject=other_kiosk, site_id=site_id))
        peeking = await client.get(f"/kiosks/{kiosk_id}/devices", headers=stranger)
        assert peeking.status_code == 404
        far_nurse = bearer(mint("nurse", site_id=str(uuid.uuid4())))
        assert (
            await client.get(f"/kiosks/{kiosk_id}/devices", headers=far_nurse)
        ).status_code == 404

        own = await client.post(
            DEVICE_BATCH,
            json={"items": [item(patient, oxi), item(patient, scale)]},
            headers=credential,
        )
        assert own.status_code == 200, own.text
        assert _outcomes(own.json()) == [("accepted", []), ("rejected", ["device_id"])]
        anonymous = await client.post(DEVICE_BATCH, json={"items": [item(patient, oxi)]})
        assert anonymous.status_code == 401
        forged = {"X-Device-Credential": enrolled["credential"][:-2] + "xx"}
        refused = await client.post(
            DEVICE_BATCH, json={"items": [item(patient, oxi)]}, headers=forged
        )
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"

        revoked = await client.post(
            f"/kiosks/{kiosk_id}/devices/{oxi}/revocation",
            json={"reason": "lost"},
            headers=nurse,
        )
        assert revoked.status_code == 200, revoked.text
        assert (revoked.json()["active"], revoked.json()["revoke_reason"]) == (False, "lost")
        again = await client.post(
            f"/kiosks/{kiosk_id}/devices/{oxi}/revocation", json={}, headers=coordinator
        )
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]

        after = await client.post(
            DEVICE_BATCH, json={"items": [item(patient, oxi)]}, headers=credential
        )
        assert after.status_code == 401
        through_kiosk = await client.post(
            "/measurements/batch",
            json={"items": [item(patient, oxi), item(patient, scale, value=96)]},
            headers=kiosk,
        )
        assert _outcomes(through_kiosk.json()) == [("rejected", ["device_id"]), ("accepted", [])]

        listed = await client.get(f"/kiosks/{kiosk_id}/devices", headers=kiosk)
        devices = {d["device_id"]: d for d in listed.json()["devices"]}
        assert (devices[oxi]["active"], devices[scale]["active"]) == (False, True)
        assert all("credential" not in d for d in devices.values())

        # Revoked, it may be enrolled again (on another kiosk too) with a new credential.
        moved = await client.post(
            f"/kiosks/{other_kiosk}/devices",
            json={"device_id": oxi, "kind": "oximeter"},
            headers=coordinator,
        )
        assert moved.status_code == 201
        assert moved.json()["credential"] != enrolled["credential"]
        unknown = await client.post(
            f"/kiosks/{kiosk_id}/devices/{device_id()}/revocation", json={}, headers=nurse
        )
        assert unknown.status_code == 404
