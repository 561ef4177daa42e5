"""Client side of the pre-flight check: connect to the echo peer, probe, report."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription

from maillage_session_signalling.peers.ice import rtc_configuration

_PAYLOAD = "x" * 1000


async def run_preflight(
    client: httpx.AsyncClient, headers: dict[str, str], probes: int = 50, open_within: float = 30.0
) -> dict[str, Any]:
    """Offer → echo peer answer; send `probes` stamped messages; report what came back."""
    pc = RTCPeerConnection(configuration=rtc_configuration([]))
    try:
        channel = pc.createDataChannel("preflight")
        rtts: dict[int, float] = {}
        sent: dict[int, float] = {}
        opened = asyncio.Event()
        done = asyncio.Event()
        channel.on("open", opened.set)

        @channel.on("message")
        def on_echo(message: str | bytes) -> None:
            seq = json.loads(message)["seq"]
            rtts[seq] = (time.perf_counter() - sent[seq]) * 1000
            if len(rtts) == probes:
                done.set()

        await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": "offer", "sdp": pc.localDescription.sdp}
        answered = await client.post("/v1/preflight", json=offer, headers=headers)
        answered.raise_for_status()
        answer = answered.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        started = time.perf_counter()
        async with asyncio.timeout(open_within):
            await opened.wait()
        for seq in range(probes):
            sent[seq] = time.perf_counter()
            channel.send(json.dumps({"seq": seq, "pad": _PAYLOAD}))
            await asyncio.sleep(0.01)
        try:
            async with asyncio.timeout(5):
                await done.wait()
        except TimeoutError:
            pass  # what did not come back counts as lost
        elapsed = max(time.perf_counter() - started, 1e-3)
        report = _measure(rtts, probes, elapsed)
        verdict = await client.post(
            f"/v1/preflight/{answer['preflight_id']}/report", json=report, headers=headers
        )
        verdict.raise_for_status()
        result: dict[str, Any] = verdict.json()
        return result
    finally:
        await pc.close()


def _measure(rtts: dict[int, float], probes: int, elapsed: float) -> dict[str, float]:
    values = [rtts[seq] for seq in sorted(rtts)]
    jitter = (
        statistics.mean(abs(b - a) for a, b in itertools.pairwise(values))
        if len(values) > 1
        else 0.0
    )
    echoed_bits = len(values) * (len(_PAYLOAD) + 20) * 8 * 2
    return {
        "rtt_ms": statistics.median(values) if values else 0.0,
        "jitter_ms": jitter,
        "loss_ratio": 1 - len(values) / probes,
        "bitrate_kbps": echoed_bits / elapsed / 1000,
    }
