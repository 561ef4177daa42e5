"""Link quality from aiortc's stats: what a peer reports in `quality` frames.

Counters (packets, bytes) are cumulative in `getStats()`; a sample is the difference between
two reports, so the first report only sets the starting point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCTransportStats,
)

# RTP clock rates (jitter is reported in timestamp units): video 90 kHz, Opus 48 kHz.
_CLOCK_RATES = {"video": 90_000, "audio": 48_000}
_MAX_MS = 60_000.0


@dataclass(frozen=True, slots=True)
class Counters:
    at: float
    bytes_received: int
    packets_received: int
    packets_lost: int


def quality_sample(
    stats: Iterable[Any], now: float, previous: Counters | None
) -> tuple[dict[str, float] | None, Counters]:
    """(the `quality` frame's fields since `previous`, or None the first time; new counters)."""
    stats = list(stats)
    inbound = [s for s in stats if isinstance(s, RTCInboundRtpStreamStats)]
    remote = [s for s in stats if isinstance(s, RTCRemoteInboundRtpStreamStats)]
    counters = Counters(
        at=now,
        bytes_received=sum(s.bytesReceived for s in stats if isinstance(s, RTCTransportStats)),
        packets_received=sum(s.packetsReceived for s in inbound),
        packets_lost=sum(max(0, s.packetsLost) for s in inbound),
    )
    if previous is None:
        return None, counters
    elapsed = max(now - previous.at, 1e-3)
    received = max(0, counters.packets_received - previous.packets_received)
    lost = max(0, counters.packets_lost - previous.packets_lost)
    bits = max(0, counters.bytes_received - previous.bytes_received) * 8
    jitter = max((s.jitter * 1000 / _CLOCK_RATES.get(s.kind, 90_000) for s in inbound), default=0.0)
    rtt = max((s.roundTripTime * 1000 for s in remote), default=0.0)
    sample = {
        "rtt_ms": min(float(rtt), _MAX_MS),
        "jitter_ms": min(float(jitter), _MAX_MS),
        "loss_ratio": lost / (received + lost) if received + lost else 0.0,
        "bitrate_kbps": min(bits / 1000 / elapsed, 1_000_000.0),
    }
    return sample, counters
