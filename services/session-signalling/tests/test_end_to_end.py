"""A full WebRTC session kiosk ↔ responder through the running service, and pre-flight."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from maillage_session_signalling.peers.agent import KioskAgent, ResponderBot
from maillage_session_signalling.peers.preflight import run_preflight

from signalling_testing import LiveServiceFactory, session_events

pytestmark = pytest.mark.integration


async def _until(condition: object, what: str) -> None:
    # Media flows on its own schedule: wait for the outcome, never for a duration.
    async with asyncio.timeout(60):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_kiosk_and_responder_exchange_video_and_device_readings(
    live_service: LiveServiceFactory, kafka_bootstrap_servers: str
) -> None:
    site, doctor = f"site-{uuid.uuid4().hex[:6]}", f"pro-{uuid.uuid4().hex[:6]}"
    async with live_service() as svc:
        sid = (await svc.create_session(site_id=site, responder=doctor))["session_id"]
        kiosk_pass = await svc.join_token(sid, "kiosk", subject="kiosk-1", site_id=site)
        doctor_pass = await svc.join_token(sid, "responder", subject=doctor)
        # Loopback: explicit empty ICE servers (never aiortc's default public STUN).
        assert kiosk_pass["ice_servers"] == []
        async with (
            KioskAgent(svc.ws_url(kiosk_pass), kiosk_pass["token"], quality_interval=0.5) as kiosk,
            ResponderBot(
                svc.ws_url(doctor_pass), doctor_pass["token"], quality_interval=0.5
            ) as bot,
        ):
            runners = [asyncio.create_task(kiosk.run()), asyncio.create_task(bot.run())]
            await _until(lambda: bot.frames_received >= 10 and len(bot.readings) >= 5, "media")
            await _until(lambda: kiosk.frames_received >= 10, "video back")
            await _until(lambda: kiosk.quality_reports >= 1 and bot.quality_reports >= 1, "stats")
            assert bot.readings[0]["device"] == "oximeter"
            assert [r["seq"] for r in bot.readings[:5]] == [1, 2, 3, 4, 5]
            await bot.end_session()
            async with asyncio.timeout(60):
                await kiosk.ended.wait()
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)

    events = await session_events(kafka_bootstrap_servers, sid, {"SessionStarted", "SessionEnded"})
    assert events["SessionEnded"][0].ended_by == 2  # ENDED_BY_RESPONDER
    # The peers' periodic stats became quality events.
    quality = await session_events(
        kafka_bootstrap_servers, sid, {"SessionQualityReported"}, topic="sessions.quality"
    )
    reporters = {e.participant.participant_id for e in quality["SessionQualityReported"]}
    assert reporters <= {kiosk_pass["participant_id"], doctor_pass["participant_id"]}
    assert all(e.bitrate_kbps > 0 for e in quality["SessionQualityReported"])


async def test_dropped_peers_rejoin_with_an_ice_restart_and_media_resumes(
    live_service: LiveServiceFactory,
) -> None:
    site, doctor = f"site-{uuid.uuid4().hex[:6]}", f"pro-{uuid.uuid4().hex[:6]}"
    async with live_service() as svc:
        sid = (await svc.create_session(site_id=site, responder=doctor))["session_id"]
        kiosk_pass = await svc.join_token(sid, "kiosk", subject="kiosk-1", site_id=site)
        doctor_pass = await svc.join_token(sid, "responder", subject=doctor)
        async with (
            KioskAgent(svc.ws_url(kiosk_pass), kiosk_pass["token"]) as kiosk,
            ResponderBot(svc.ws_url(doctor_pass), doctor_pass["token"]) as bot,
        ):
            runners = [asyncio.create_task(kiosk.run()), asyncio.create_task(bot.run())]
            await _until(lambda: bot.frames_received >= 10 and len(bot.readings) >= 3, "media")

            # The kiosk loses its network, comes back with the same token and re-offers.
            await kiosk.drop_and_rejoin()
            frames, last_seq = bot.frames_received, bot.readings[-1]["seq"]
            await _until(lambda: bot.media_connections == 2, "second media path")
            await _until(lambda: bot.frames_received >= frames + 10, "video after the restart")
            await _until(lambda: bot.readings[-1]["seq"] > last_seq, "readings after it")

            # The responder drops: back, it asks the kiosk for a restart (`restart` frame).
            await bot.drop_and_rejoin()
            frames = kiosk.frames_received
            await _until(lambda: kiosk.media_connections == 3, "third media path")
            await _until(lambda: kiosk.frames_received >= frames + 10, "video back again")
            assert (kiosk.rejoins, bot.rejoins) == (1, 1)
            assert not kiosk.ended.is_set()
            assert not bot.ended.is_set()

            await bot.end_session()
            async with asyncio.timeout(60):
                await kiosk.ended.wait()
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
        read = await svc.client.get(f"/v1/sessions/{sid}", headers=svc.auth("coordinator"))
        assert read.json()["state"] == "ended"  # the drops did not end or fail the session


async def test_preflight_echo_peer_gives_a_verdict(live_service: LiveServiceFactory) -> None:
    async with live_service() as svc:
        headers = svc.auth("kiosk", subject="kiosk-1", site_id="site-p")
        result = await run_preflight(svc.client, headers, probes=30)
        assert result["echoed_messages"] == 30
        assert result["loss_ratio"] == 0.0
        assert result["verdict"] in {"good", "poor"}
        assert len(svc.app.state.peers) == 0  # the echo peer was closed after the report
        unknown = await svc.client.post(
            "/v1/preflight/nope/report",
            json={"rtt_ms": 1, "jitter_ms": 1, "loss_ratio": 0, "bitrate_kbps": 1},
            headers=headers,
        )
        assert unknown.status_code == 404
