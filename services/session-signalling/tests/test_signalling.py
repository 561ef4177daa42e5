"""Signalling over the real WebSocket of the running service (integration)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from signalling_wsclient import Client
from websockets.asyncio.client import connect

from signalling_testing import LiveServiceFactory, session_events

pytestmark = pytest.mark.integration

TURN_SECRET = "turn-shared-secret"


async def test_a_full_session_waiting_room_admission_media_and_end(
    live_service: LiveServiceFactory, kafka_bootstrap_servers: str
) -> None:
    site, responder = f"site-{uuid.uuid4().hex[:6]}", f"pro-{uuid.uuid4().hex[:6]}"
    async with live_service(
        turn_urls=["turn:turn.example.org:3478"], turn_secret=TURN_SECRET, grace_seconds=600
    ) as svc:
        session = await svc.create_session(site_id=site, responder=responder)
        sid = session["session_id"]
        kiosk_pass = await svc.join_token(sid, "kiosk", subject="kiosk-1", site_id=site)
        doctor_pass = await svc.join_token(sid, "responder", subject=responder)

        kiosk, joined = await Client.join(svc.ws_url(kiosk_pass), kiosk_pass["token"])
        assert (joined["state"], joined["peers"], joined["role"]) == ("waiting", [], "patient")
        doctor, joined = await Client.join(svc.ws_url(doctor_pass), doctor_pass["token"])
        kiosk_id, doctor_id = kiosk_pass["participant_id"], doctor_pass["participant_id"]
        assert joined["peers"] == [{"participant_id": kiosk_id, "role": "patient"}]
        assert (await kiosk.expect("peer_joined"))["participant_id"] == doctor_id

        await doctor.send({"type": "offer", "to": kiosk_id, "sdp": "v=0 early"})
        assert (await doctor.expect("error"))["code"] == "not_admitted"
        await kiosk.send({"type": "admit"})
        assert (await kiosk.expect("error"))["code"] == "not_allowed"

        await doctor.send({"type": "admit"})
        assert (await kiosk.expect("state"))["state"] == "admitted"
        await doctor.send({"type": "offer", "to": kiosk_id, "sdp": "v=0 offer"})
        offer = await kiosk.expect("offer")
        assert offer == {"v": 1, "type": "offer", "sdp": "v=0 offer", "from": doctor_id}
        await kiosk.send({"type": "answer", "to": doctor_id, "sdp": "v=0 answer"})
        assert (await doctor.expect("answer"))["from"] == kiosk_id
        assert (await doctor.expect("state"))["state"] == "live"
        await kiosk.send({"type": "chat", "text": "bonjour docteur"})
        chat = await doctor.expect("chat")
        assert (chat["text"], chat["from"]) == ("bonjour docteur", kiosk_id)

        # A spoofed sender is a protocol violation; the kiosk rejoins with the same token.
        await kiosk.send({"type": "chat", "text": "x", "from": doctor_id})
        assert await kiosk.closed_with() == 1008
        kiosk, joined = await Client.join(svc.ws_url(kiosk_pass), kiosk_pass["token"])
        assert joined["rejoined"] is True
        assert (await doctor.expect("peer_joined"))["rejoined"] is True

        await doctor.send({"type": "bye"})
        await kiosk.expect("bye")
        assert await kiosk.closed_with() == 1000

        read = await svc.client.get(f"/v1/sessions/{sid}", headers=svc.auth("coordinator"))
        assert read.json()["state"] == "ended"
        summary = read.json()
        assert summary["ended_by"] == "responder"
        assert summary["total_seconds"] >= summary["live_seconds"] >= 0
        assert {p["participant_id"] for p in summary["participants"]} == {kiosk_id, doctor_id}
        assert {p["leave_reason"] for p in summary["participants"]} == {"session_ended"}

        turn = next(s for s in kiosk_pass["ice_servers"] if s.get("username"))
        expiry, _, for_session = turn["username"].partition(":")
        assert for_session == sid
        deadline = datetime.fromisoformat(session["scheduled_end"]).timestamp() + 600
        assert int(expiry) <= deadline
        digest = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
        assert turn["credential"] == base64.b64encode(digest).decode()

    events = await session_events(
        kafka_bootstrap_servers,
        sid,
        {
            "SessionScheduled",
            "PatientWaiting",
            "ParticipantJoined",
            "SessionStarted",
            "SessionEnded",
        },
    )
    ended = events["SessionEnded"][0]
    assert ended.ended_by == 2  # ENDED_BY_RESPONDER
    assert {p.participant_id for p in ended.participants} == {kiosk_id, doctor_id}
    assert ended.total_seconds >= ended.live_seconds
    assert len(events["ParticipantJoined"]) == 2  # the rejoin is not a new join


async def test_only_participants_get_join_tokens_and_a_session_can_fail(
    live_service: LiveServiceFactory, kafka_bootstrap_servers: str
) -> None:
    site = f"site-{uuid.uuid4().hex[:6]}"
    async with live_service() as svc:
        sid = (await svc.create_session(site_id=site, responder="pro-a"))["session_id"]
        post = svc.client.post
        path = f"/v1/sessions/{sid}/join-token"
        outsiders: list[dict[str, Any]] = [
            svc.auth("kiosk", site_id="elsewhere"),
            svc.auth("nurse", site_id="elsewhere"),
            svc.auth("responder", subject="pro-b"),
        ]
        for headers in outsiders:
            assert (await post(path, headers=headers)).status_code == 404
        assert (await post(path, headers=svc.auth("coordinator"))).status_code == 403
        nurse = await post(path, headers=svc.auth("nurse", subject="n1", site_id=site))
        assert nurse.json()["role"] == "assistant"
        read = await svc.client.get(f"/v1/sessions/{sid}", headers=outsiders[0])
        assert read.status_code == 404
        naive = await post(
            "/v1/sessions",
            json={
                "site_id": site,
                "responder_id": "pro-a",
                "scheduled_start": "2026-11-23T09:00:00",
                "scheduled_end": "2026-11-23T09:30:00",
            },
            headers=svc.auth("coordinator"),
        )
        assert naive.status_code == 422
        assert naive.headers["content-type"] == "application/problem+json"

        kiosk_pass = await svc.join_token(sid, "kiosk", subject="k1", site_id=site)
        doctor_pass = await svc.join_token(sid, "responder", subject="pro-a")
        kiosk, _ = await Client.join(svc.ws_url(kiosk_pass), kiosk_pass["token"])
        doctor, _ = await Client.join(svc.ws_url(doctor_pass), doctor_pass["token"])
        await kiosk.send({"type": "bye"})  # only the responder ends a session normally
        assert (await kiosk.expect("error"))["code"] == "not_allowed"
        await kiosk.send({"type": "bye", "failure": "device", "detail": "camera unplugged"})
        await doctor.expect("bye")
        assert await doctor.closed_with() == 1000
    failed = (await session_events(kafka_bootstrap_servers, sid, {"SessionFailed"}))[
        "SessionFailed"
    ][0]
    assert (failed.reason, failed.detail) == (3, "camera unplugged")  # FAILURE_REASON_DEVICE


async def test_abusive_clients_are_closed_and_other_rooms_keep_working(
    live_service: LiveServiceFactory,
) -> None:
    site = f"site-{uuid.uuid4().hex[:6]}"
    async with live_service(max_message_bytes=8192, flood_rate_per_second=5, flood_burst=20) as svc:
        calm = (await svc.create_session(site_id=site, responder="pro-a"))["session_id"]
        noisy = (await svc.create_session(site_id=site, responder="pro-a"))["session_id"]
        calm_kiosk = await svc.join_token(calm, "kiosk", subject="k1", site_id=site)
        calm_nurse = await svc.join_token(calm, "nurse", subject="n1", site_id=site)
        noisy_pass = await svc.join_token(noisy, "kiosk", subject="k2", site_id=site)
        kiosk, _ = await Client.join(svc.ws_url(calm_kiosk), calm_kiosk["token"])
        nurse, _ = await Client.join(svc.ws_url(calm_nurse), calm_nurse["token"])

        async def attempt(
            frames: list[str], url: str | None = None, join: bool = True
        ) -> int | None:
            async with connect(url or svc.ws_url(noisy_pass), max_size=None) as ws:
                client = Client(ws)
                if join:
                    await client.send({"type": "join", "token": noisy_pass["token"]})
                    await client.expect("joined")
                for frame in frames:
                    await ws.send(frame)
                return await client.closed_with()

        assert await attempt(["{not json"]) == 1008
        assert await attempt([json.dumps({"v": 1, "type": "warp"})]) == 1008
        assert (
            await attempt([json.dumps({"v": 1, "type": "chat", "text": "x" * 1_048_576})]) == 1009
        )
        flood = [json.dumps({"v": 1, "type": "chat", "text": "spam"})] * 500
        assert await attempt(flood) == 1008
        guessed = svc.ws_base + "/v1/rooms/" + "A" * 32 + "/ws"
        token_frame = json.dumps({"v": 1, "type": "join", "token": noisy_pass["token"]})
        assert await attempt([token_frame], url=guessed, join=False) == 1008
        assert await attempt([json.dumps({"v": 1, "type": "chat"})], join=False) == 1008
        wrong_room = svc.ws_url(calm_kiosk)
        assert await attempt([token_frame], url=wrong_room, join=False) == 1008

        # Same token twice: the newer connection replaces the older one.
        first, _ = await Client.join(svc.ws_url(noisy_pass), noisy_pass["token"])
        second, joined = await Client.join(svc.ws_url(noisy_pass), noisy_pass["token"])
        assert await first.closed_with() == 4000
        assert joined["rejoined"] is True
        await second.close()

        await kiosk.send({"type": "chat", "text": "still here"})
        assert (await nurse.expect("chat"))["text"] == "still here"
        await kiosk.close()
        await nurse.close()
