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
            KioskAgent(svc.ws_url(kiosk_pass), kiosk_pass["token"]) as kiosk,
            ResponderBot(svc.ws_url(doctor_pass), doctor_pass["token"]) as bot,
        ):
            runners = [asyncio.create_task(kiosk.run()), asyncio.create_task(bot.run())]
            await _until(lambda: bot.frames_received >= 10 and len(bot.readings) >= 5, "media")
            await _until(lambda: kiosk.frames_received >= 10, "video back")
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
