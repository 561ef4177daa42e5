"""The `maillage` command: up, infra, token, keys, bench."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from maillage_devstack import bench, launcher
from maillage_devstack.infra import InfrastructureError

ROLES = ("kiosk", "nurse", "responder", "coordinator", "service")


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=launcher.DEFAULT_STATE_DIR,
        help="where data, logs and dev keys live (default: %(default)s, git-ignored)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maillage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the whole platform (what `make up` runs)")
    up.add_argument(
        "--services",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        help="comma-separated subset of: " + ", ".join(spec.name for spec in launcher.SERVICES),
    )
    _add_state_dir(up)

    infra = commands.add_parser("infra", help="run only the broker and PostgreSQL")
    _add_state_dir(infra)

    token = commands.add_parser("token", help="print a development JWT")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--subject", help="the `sub` claim (default: dev-<role>)")
    token.add_argument("--site", dest="site_id", metavar="SITE_ID")
    token.add_argument("--rpps", metavar="RPPS")
    token.add_argument("--ttl", type=_positive, default=3600, metavar="SECONDS")
    _add_state_dir(token)

    keys = commands.add_parser("keys", help="create the dev signing key, print the JWKS path")
    _add_state_dir(keys)

    benchmarks = commands.add_parser("bench", help="run benchmarks")
    benchmarks.add_argument("names", nargs="*", metavar="NAME")
    benchmarks.add_argument("--list", action="store_true", help="list benchmarks and exit")
    return parser


def _keys(state_dir: Path) -> int:
    from maillage_common.auth.keys import ensure_dev_signing_key  # FastAPI-heavy: lazy

    print(ensure_dev_signing_key(state_dir / "dev-keys").jwks_path.resolve())
    return 0


def _token(arguments: argparse.Namespace) -> int:
    from maillage_common.auth import Role  # FastAPI-heavy: lazy
    from maillage_common.auth.keys import ensure_dev_signing_key, mint_token

    key = ensure_dev_signing_key(arguments.state_dir / "dev-keys")
    print(
        mint_token(
            private_jwk_path=key.private_jwk_path,
            role=Role(arguments.role),
            subject=arguments.subject or f"dev-{arguments.role}",
            issuer=launcher.DEV_ISSUER,
            audience=launcher.AUDIENCE,
            site_id=arguments.site_id,
            rpps=arguments.rpps,
            ttl_seconds=arguments.ttl,
        )
    )
    return 0


def _infra(state_dir: Path) -> int:
    with launcher.stop_on_signals() as stop:
        try:
            with launcher.platform_infrastructure(state_dir.resolve()) as (infra, database_url):
                print(f"export KAFKA_BOOTSTRAP_SERVERS={infra.kafka_bootstrap_servers}")
                print(f"export DATABASE_URL={database_url}")
                print("# Ctrl-C stops the infrastructure.", flush=True)
                while not stop.wait(1.0):
                    pass
        except InfrastructureError as error:
            print(f"maillage infra failed: {error}", file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    match arguments.command:
        case "up":
            try:
                launcher.select_services(arguments.services)
            except ValueError as error:
                print(f"maillage up: {error}", file=sys.stderr)
                return 2
            return launcher.run_up(arguments.services, state_dir=arguments.state_dir)
        case "infra":
            return _infra(arguments.state_dir)
        case "token":
            return _token(arguments)
        case "keys":
            return _keys(arguments.state_dir)
        case "bench":
            return bench.run_benchmarks(arguments.names, sys.stdout, list_only=arguments.list)
    raise AssertionError(f"unhandled command {arguments.command}")
