"""Operator commands of the directory: `maillage-directory republish [...]`.

Also `python -m maillage_directory.cli republish [...]` (what the container entrypoint runs).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from maillage_common.db.engine import create_engine, create_session_factory
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.settings import DirectorySettings
from maillage_directory.use_cases.republish import KINDS, RepublishReport, republish


async def run_republish(
    settings: DirectorySettings, *, reason: str, kinds: Sequence[str], batch_size: int
) -> RepublishReport:
    """Republish with a small pool of its own (the service keeps serving beside it)."""
    engine = create_engine(settings, pool_size=1)
    sessions = create_session_factory(engine)
    try:
        return await republish(
            lambda: UnitOfWork(sessions, max_event_bytes=settings.kafka_max_message_bytes),
            reason=reason,
            kinds=kinds,
            batch_size=batch_size,
        )
    finally:
        await engine.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maillage-directory")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "republish",
        help="bump every row's version and publish its full snapshot again (after a data "
        "migration that rewrote rows); safe while the service runs, safe to run again",
    )
    command.add_argument(
        "--kind",
        action="append",
        choices=list(KINDS),
        help="only this kind (repeatable); default: site, professional, kiosk",
    )
    command.add_argument(
        "--reason",
        required=True,
        help='why, kept in each row\'s change history (e.g. "migration 0003")',
    )
    command.add_argument("--batch-size", type=int, default=200, help="rows per transaction")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        _parser().error("--batch-size must be at least 1")
    kinds = list(dict.fromkeys(args.kind or KINDS))
    report = asyncio.run(
        run_republish(
            DirectorySettings.from_environment(),
            reason=args.reason,
            kinds=kinds,
            batch_size=args.batch_size,
        )
    )
    counts = ", ".join(f"{count} {kind}" for kind, count in report.republished.items())
    print(f"republished {report.total} rows ({counts}); the outbox relay publishes them")


if __name__ == "__main__":
    main()
