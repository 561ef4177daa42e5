"""`maillage-demo` (what `make demo` runs): a region in a box.

Starts the platform (embedded broker and PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL are set), loads a synthetic Grand Est, simulates a compressed week through the
public APIs, then prints the observatory and where to look.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from maillage_demo.client import DemoError, Endpoints, Tokens
from maillage_demo.observatory import (
    expected_counts,
    observed_counts,
    render_summary,
    settled_observatory,
)
from maillage_demo.plan import Plan, build_plan, summary
from maillage_demo.platform import DEFAULT_STATE_DIR, demo_settings, running_platform
from maillage_demo.simulator import BeforeAction, Report, Simulator
from maillage_devstack.infra import InfrastructureError
from maillage_devstack.launcher import LaunchError, stop_on_signals


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maillage-demo", description=__doc__)
    parser.add_argument("--sites", type=_positive_int, default=160, help="default %(default)s")
    parser.add_argument("--days", type=_positive_int, default=7, help="default %(default)s")
    parser.add_argument(
        "--speed",
        type=_non_negative,
        default=10_000.0,
        help="simulated seconds per real second; 0 = as fast as the platform answers"
        " (default %(default)s: a day lasts at least ~9 s)",
    )
    parser.add_argument("--seed", type=int, default=2024, help="default %(default)s")
    parser.add_argument(
        "--concurrency", type=_positive_int, default=3, help="calls at once (default %(default)s)"
    )
    parser.add_argument(
        "--heartbeat-seconds",
        type=_non_negative,
        default=None,
        help="kiosk heartbeat period (default: grows with the fleet, at least 2 s)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the platform up after the summary, to browse it, until Ctrl-C",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="dev keys, secrets and service logs (default %(default)s)",
    )
    return parser


def heartbeat_period(plan: Plan) -> float:
    """About 20 heartbeats per second for the whole fleet, never more often than every 2 s."""
    kiosks = sum(len(site.kiosks) for site in plan.sites)
    return max(2.0, kiosks / 20)


async def simulate(
    plan: Plan,
    endpoints: Endpoints,
    tokens: Tokens,
    *,
    speed: float,
    concurrency: int,
    heartbeat_seconds: float,
    out: TextIO,
    before_action: BeforeAction | None = None,
) -> tuple[Report, dict[str, object]]:
    """Run the plan, then read the observatory once it has caught up with what was done."""

    def progress(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=out, flush=True)

    async with Simulator(
        plan,
        endpoints,
        tokens,
        speed=speed,
        concurrency=concurrency,
        heartbeat_seconds=heartbeat_seconds,
        progress=progress,
        before_action=before_action,
    ) as simulator:
        report = await simulator.run()
        progress("waiting for the observatory to fold every event…")
        observatory = await settled_observatory(endpoints, tokens, expected_counts(plan.expected()))
    return report, observatory


def where_to_look(endpoints: Endpoints, state_dir: Path, log_path: Path) -> list[str]:
    lines = ["", "Where to look (the platform stops now unless --keep-running):"]
    for name, url in endpoints.urls.items():
        lines.append(f"  {name:<19} API docs {url}/docs   metrics {url}/metrics")
    statistics = endpoints["statistics"]
    lines += [
        f"  observatory         {statistics}/v1/observatory (coordinator token:"
        f" maillage token --role coordinator --state-dir {state_dir})",
        f"  open data           {statistics}/v1/open-data.csv",
        f"  Prometheus          {statistics}/metrics (maillage_statistics_* indicators);"
        " dashboards: deploy/ (Grafana) point at these /metrics",
        f"  service logs        {log_path}",
    ]
    return lines


def run_demo(arguments: argparse.Namespace, out: TextIO) -> int:
    plan = build_plan(arguments.seed, sites=arguments.sites, days=arguments.days)
    heartbeat_seconds = arguments.heartbeat_seconds or heartbeat_period(plan)
    print(
        f"Plan (seed {plan.seed}): {len(plan.sites)} sites, {len(plan.responders)} responders,"
        f" {sum(len(s.kiosks) for s in plan.sites)} kiosks, {len(plan.days)} days;"
        f" actions {summary(plan)}",
        file=out,
        flush=True,
    )
    print("Starting the platform (logs in the state directory)…", file=out, flush=True)
    try:
        with running_platform(
            arguments.state_dir, settings=demo_settings(heartbeat_seconds)
        ) as platform:
            tokens = Tokens(platform.private_jwk_path, platform.issuer, platform.audience)
            report, observatory = asyncio.run(
                simulate(
                    plan,
                    platform.endpoints,
                    tokens,
                    speed=arguments.speed,
                    concurrency=arguments.concurrency,
                    heartbeat_seconds=heartbeat_seconds,
                    out=out,
                )
            )
            (arguments.state_dir / "observatory.json").write_text(
                json.dumps(observatory, indent=2, default=str), encoding="utf-8"
            )
            for line in render_summary(observatory):
                print(line, file=out)
            expected = expected_counts(plan.expected())
            observed = observed_counts(observatory)
            print(f"Simulator did: {asdict(report) | {'failures': len(report.failures)}}", file=out)
            verdict = "matches" if observed == expected else f"DIFFERS from {expected}"
            print(f"Observatory {verdict} the plan's expectations.", file=out)
            for line in where_to_look(platform.endpoints, arguments.state_dir, platform.log_path):
                print(line, file=out, flush=True)
            if arguments.keep_running:
                print("The platform keeps running; Ctrl-C stops it.", file=out, flush=True)
                with stop_on_signals() as stop:
                    while not stop.wait(1.0):
                        pass
            return 0 if observed == expected else 1
    except (DemoError, LaunchError, InfrastructureError) as error:
        print(f"maillage-demo failed: {error}", file=out, flush=True)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_demo(build_parser().parse_args(argv), sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
