"""A small demo against the real platform (embedded broker and PostgreSQL, five services in
their own processes): the observatory counts what the simulator did, no more, no less."""

from __future__ import annotations

import io

import pytest

from maillage_demo.cli import simulate
from maillage_demo.client import Tokens
from maillage_demo.observatory import expected_counts, observed_counts
from maillage_demo.plan import build_plan
from maillage_demo.platform import Platform

pytestmark = pytest.mark.integration


async def test_a_small_demo_ends_with_the_observatory_counting_what_was_done(
    platform: Platform, heartbeat_seconds: float
) -> None:
    plan = build_plan(11, sites=10, days=1)
    tokens = Tokens(platform.private_jwk_path, platform.issuer, platform.audience)
    progress = io.StringIO()

    report, observatory = await simulate(
        plan,
        platform.endpoints,
        tokens,
        speed=0,
        concurrency=2,
        heartbeat_seconds=heartbeat_seconds,
        out=progress,
    )

    expected = plan.expected()
    assert report.failures == []
    # The simulator did what the plan said…
    assert (report.teleconsultations, report.cancellations, report.no_shows) == (
        expected.teleconsultations,
        expected.cancellations,
        expected.no_shows,
    )
    assert (report.expertises, report.measurements, report.kiosk_outages) == (
        expected.expertises,
        expected.measurements,
        expected.kiosk_outages,
    )
    # …over real media between the aiortc peers…
    assert report.media_frames > 0
    # …and the statistics service, fed by events only, counts exactly that.
    assert observed_counts(observatory) == expected_counts(expected)
    assert "day 1/1" in progress.getvalue()
