"""Quality samples computed from aiortc stats reports (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCTransportStats,
)

from maillage_session_signalling.peers.stats import quality_sample

NOW = datetime.now(UTC)


def _report(received: int, lost: int, jitter: int, bytes_received: int) -> list[object]:
    return [
        RTCInboundRtpStreamStats(
            timestamp=NOW,
            type="inbound-rtp",
            id="in",
            ssrc=1,
            kind="video",
            transportId="t",
            packetsReceived=received,
            packetsLost=lost,
            jitter=jitter,
        ),
        RTCRemoteInboundRtpStreamStats(
            timestamp=NOW,
            type="remote-inbound-rtp",
            id="rin",
            ssrc=2,
            kind="video",
            transportId="t",
            packetsReceived=0,
            packetsLost=0,
            jitter=0,
            roundTripTime=0.042,
            fractionLost=0.0,
        ),
        RTCTransportStats(
            timestamp=NOW,
            type="transport",
            id="t",
            packetsSent=0,
            packetsReceived=0,
            bytesSent=0,
            bytesReceived=bytes_received,
            iceRole="controlling",
            dtlsState="connected",
        ),
    ]


def test_the_first_report_only_sets_the_starting_point() -> None:
    sample, counters = quality_sample(_report(100, 0, 0, 10_000), 10.0, None)
    assert sample is None
    assert counters.packets_received == 100


def test_a_sample_is_the_difference_between_two_reports() -> None:
    _, start = quality_sample(_report(100, 2, 900, 10_000), 10.0, None)
    sample, _ = quality_sample(_report(190, 12, 900, 260_000), 12.0, start)
    assert sample is not None
    assert sample["loss_ratio"] == pytest.approx(10 / 100)  # 90 received, 10 lost since
    assert sample["bitrate_kbps"] == pytest.approx(250_000 * 8 / 1000 / 2)
    assert sample["jitter_ms"] == pytest.approx(10.0)  # 900 ticks of the 90 kHz video clock
    assert sample["rtt_ms"] == pytest.approx(42.0)
