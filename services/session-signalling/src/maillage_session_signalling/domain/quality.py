"""Media quality levels and the pre-flight verdict, from RTT, jitter, loss and bitrate."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QualityLevel(StrEnum):
    EXCELLENT = "excellent"
    GOOD = "good"
    POOR = "poor"
    LOST = "lost"


class Verdict(StrEnum):
    GOOD = "good"
    POOR = "poor"
    UNUSABLE = "unusable"


@dataclass(frozen=True, slots=True)
class LinkStats:
    rtt_ms: float
    jitter_ms: float
    loss_ratio: float
    bitrate_kbps: float


# ITU-T G.114 puts interactive speech comfortable under 150 ms one-way; video consultations
# stay usable to ~400 ms RTT and ~5 % loss with FEC/NACK.
def quality_level(stats: LinkStats) -> QualityLevel:
    if stats.bitrate_kbps <= 0 or stats.loss_ratio >= 0.5:
        return QualityLevel.LOST
    if stats.rtt_ms < 150 and stats.jitter_ms < 20 and stats.loss_ratio < 0.01:
        return QualityLevel.EXCELLENT
    if stats.rtt_ms < 300 and stats.jitter_ms < 50 and stats.loss_ratio < 0.05:
        return QualityLevel.GOOD
    return QualityLevel.POOR


# A teleconsultation needs ~300 kbit/s for usable video (VGA at low frame rate).
MIN_USABLE_KBPS = 300.0


def preflight_verdict(stats: LinkStats) -> Verdict:
    level = quality_level(stats)
    if level is QualityLevel.LOST or stats.bitrate_kbps < MIN_USABLE_KBPS / 2:
        return Verdict.UNUSABLE
    if level in (QualityLevel.EXCELLENT, QualityLevel.GOOD) and (
        stats.bitrate_kbps >= MIN_USABLE_KBPS
    ):
        return Verdict.GOOD
    return Verdict.POOR
