"""Inviting a specialist or an interpreter into a session, and revoking them (integration)."""

from __future__ import annotations

import uuid

import pytest
from signalling_wsclient import Client

from maillage.common.v1 import types_pb2
from maillage.session_signalling.v1 import events_pb2

from signalling_testing import LiveServiceFactory, session_events

pytestmark = pytest.mark.integration


async def test_the_responder_invites_a_specialist_who_joins_and_is_then_removed(
    live_service: LiveServiceFactory, kafka_bootstrap_servers: str
) -> None:
    site, doctor = f"site-{uuid.uuid4().hex[:6]}", f"pro-{uuid.uuid4().hex[:6]}"
    async with live_service() as svc:
        sid = (await svc.create_session(site_id=site, responder=doctor))["session_id"]
        kiosk_pass = await svc.join_token(sid, "kiosk", subject="kiosk-1", site_id=site)
        doctor_pass = await svc.join_token(sid, "responder", subject=doctor)
        kiosk, _ = await Client.join(svc.ws_url(kiosk_pass), kiosk_pass["token"])
        doctor_ws, _ = await Client.join(svc.ws_url(doctor_pass), doctor_pass["token"])
        assert (await kiosk.expect("peer_joined"))["role"] == "responder"

        invited = await svc.client.post(
            f"/v1/sessions/{sid}/invitations",
            json={"role": "specialist", "invitee_id": "rpps-cardio-1"},
            headers=svc.auth("responder", subject=doctor),
        )
        assert invited.status_code == 201, invited.text
        invitation = invited.json()
        assert (invitation["invited_by"], invitation["revoked_at"]) == (doctor, None)
        credential = invitation["join"]
        assert credential["role"] == "specialist"
        specialist_id = credential["participant_id"]

        specialist, joined = await Client.join(svc.ws_url(credential), credential["token"])
        assert joined["role"] == "specialist"
        assert {p["participant_id"] for p in joined["peers"]} == {
            kiosk_pass["participant_id"],
            doctor_pass["participant_id"],
        }
        assert (await kiosk.expect("peer_joined"))["role"] == "specialist"
        # Before admission only the patient side talks among itself; invitees wait too.
        await specialist.send({"type": "offer", "to": kiosk_pass["participant_id"], "sdp": "v=0"})
        assert (await specialist.expect("error"))["code"] == "not_admitted"
        # An invitee leaves; it cannot end the consultation for everyone.
        await specialist.send({"type": "bye"})
        assert (await specialist.expect("error"))["code"] == "not_allowed"

        revoked = await svc.client.delete(
            f"/v1/sessions/{sid}/invitations/{invitation['invitation_id']}",
            headers=svc.auth("coordinator", subject="coord-9"),
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_by"] == "coord-9"
        assert await specialist.closed_with() == 4003
        left = await doctor_ws.expect("peer_left")
        assert (left["participant_id"], left["reason"]) == (specialist_id, "removed")
        # The credential no longer opens the room.
        again, _ = await _join_raw(svc.ws_url(credential), credential["token"])
        assert await again.closed_with() == 4003

        listed = await svc.client.get(
            f"/v1/sessions/{sid}/invitations", headers=svc.auth("responder", subject=doctor)
        )
        assert [(i["role"], i["revoked_by"]) for i in listed.json()] == [("specialist", "coord-9")]
        await kiosk.close()
        await doctor_ws.close()

    events = await session_events(
        kafka_bootstrap_servers, sid, {"ParticipantJoined", "ParticipantLeft"}
    )
    joined_roles = {e.participant.role: e.participant for e in events["ParticipantJoined"]}
    specialist_event = joined_roles[types_pb2.PARTICIPANT_ROLE_SPECIALIST]
    assert specialist_event.participant_id == specialist_id
    assert specialist_event.professional_id == "rpps-cardio-1"
    departures = events["ParticipantLeft"]
    removed = [e for e in departures if e.participant.participant_id == specialist_id]
    assert [e.reason for e in removed] == [events_pb2.LEAVE_REASON_REMOVED]


async def test_who_may_invite_and_what_is_refused(live_service: LiveServiceFactory) -> None:
    site, doctor = f"site-{uuid.uuid4().hex[:6]}", f"pro-{uuid.uuid4().hex[:6]}"
    async with live_service(max_invitees=1) as svc:
        sid = (await svc.create_session(site_id=site, responder=doctor))["session_id"]
        path = f"/v1/sessions/{sid}/invitations"
        body = {"role": "interpreter", "invitee_id": "interpretariat-42"}

        other_doctor = await svc.client.post(
            path, json=body, headers=svc.auth("responder", subject="pro-other")
        )
        assert other_doctor.status_code == 404  # not their session: nothing to learn
        kiosk = await svc.client.post(
            path, json=body, headers=svc.auth("kiosk", subject="k", site_id=site)
        )
        assert kiosk.status_code == 403
        bad_role = await svc.client.post(
            path,
            json={"role": "responder", "invitee_id": "x"},
            headers=svc.auth("coordinator"),
        )
        assert bad_role.status_code == 422
        assert bad_role.headers["content-type"].startswith("application/problem+json")
        assert any(e["field"].endswith("role") for e in bad_role.json()["errors"])

        first = await svc.client.post(path, json=body, headers=svc.auth("coordinator"))
        assert first.status_code == 201, first.text
        assert first.json()["join"]["role"] == "interpreter"
        second = await svc.client.post(path, json=body, headers=svc.auth("coordinator"))
        assert second.status_code == 409
        unknown = await svc.client.delete(
            f"{path}/{uuid.uuid4()}", headers=svc.auth("responder", subject=doctor)
        )
        assert unknown.status_code == 404
        # Revoking frees the place.
        revoke = f"{path}/{first.json()['invitation_id']}"
        gone = await svc.client.delete(revoke, headers=svc.auth("responder", subject=doctor))
        assert gone.status_code == 200
        assert (await svc.client.post(path, json=body, headers=svc.auth("coordinator"))).is_success


async def _join_raw(url: str, token: str) -> tuple[Client, None]:
    """Connect and send join without expecting `joined` (the server refuses)."""
    from websockets.asyncio.client import connect

    ws = await connect(url)
    client = Client(ws)
    await client.send({"type": "join", "token": token})
    return client, None
