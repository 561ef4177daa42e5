"""Starting the platform for the demo with the devstack's launcher pieces.

The same processes as `make up` (migrations, then uvicorn per service), on the preferred
ports when free; their output goes to a log file so the terminal shows the demo's progress.
The demo's own state directory keeps its data apart from `make up`'s, and its database is
emptied at each start so the observatory shows this run only.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from maillage_common.auth.keys import ensure_dev_signing_key
from maillage_demo.client import Endpoints
from maillage_devstack import launcher
from maillage_devstack.dev_secrets import ensure_dev_secrets
from maillage_devstack.infra import (
    Infrastructure,
    free_port,
    preferred_port,
    provide_infrastructure,
    run_psql,
)

DEMO_DATABASE = "maillage_demo"
DEFAULT_STATE_DIR = Path(".maillage/demo")


@dataclass(frozen=True, slots=True)
class Platform:
    endpoints: Endpoints
    private_jwk_path: Path
    issuer: str
    audience: str
    infrastructure: Infrastructure
    database_url: str
    log_path: Path
    processes: dict[str, launcher.ServiceProcess]
    environments: Mapping[str, Mapping[str, str]]
    console: launcher._Console

    def kill_and_restart(self, name: str) -> None:
        """SIGKILL a service, as a crash would, start it again and wait until it is ready
        (for fault drills: nothing it acknowledged may be lost)."""
        process = self.processes[name]
        process.process.kill()
        process.wait(0.0)
        restarted = launcher.start_service(process.spec, self.environments[name], self.console)
        self.processes[name] = restarted
        launcher.wait_until_ready([restarted], threading.Event())


def demo_settings(heartbeat_seconds: float) -> dict[str, str]:
    """Service settings tuned for a compressed week: the fleet watchdog notices a silent
    kiosk after a few missed heartbeats instead of three minutes, and an on-demand request
    nobody local takes widens to the region after seconds instead of a minute."""
    return {
        "LOG_LEVEL": "WARNING",
        "BOOKING_ONDEMAND_WIDEN_AFTER_SECONDS": "5",
        "TELEMETRY_OFFLINE_AFTER_SECONDS": str(heartbeat_seconds * 6),
        "TELEMETRY_OFFLINE_CHECK_INTERVAL_SECONDS": str(max(0.5, heartbeat_seconds / 2)),
    }


def fresh_database(infrastructure: Infrastructure, name: str) -> str:
    """An empty database `name` on the embedded server, or DATABASE_URL as configured."""
    if infrastructure.postgres is None:
        return infrastructure.database_url
    run_psql(
        infrastructure.postgres.url,
        "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'name')\\gexec\n",
        variables={"name": name},
    )
    return infrastructure.ensure_database(name)


@contextlib.contextmanager
def _infrastructure(state_dir: Path, given: Infrastructure | None) -> Iterator[Infrastructure]:
    if given is not None:
        yield given
        return
    with provide_infrastructure(
        state_dir,
        durable=False,
        kafka_port=preferred_port(launcher.PREFERRED_KAFKA_PORT),
        postgres_port=free_port(),
    ) as infrastructure:
        yield infrastructure


@contextlib.contextmanager
def running_platform(
    state_dir: Path,
    *,
    infrastructure: Infrastructure | None = None,
    database: str = DEMO_DATABASE,
    preferred_ports: bool = True,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Platform]:
    """Infrastructure (embedded unless configured or given), migrations, the five services;
    everything started here is stopped on exit."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = ensure_dev_signing_key(state_dir / "dev-keys")
    secrets = ensure_dev_secrets(state_dir)
    log_path = state_dir / "services.log"
    specs = [
        launcher.ServiceSpec(
            spec.name, spec.package, preferred_port(spec.port) if preferred_ports else free_port()
        )
        for spec in launcher.SERVICES
    ]
    with (
        _infrastructure(state_dir, infrastructure) as infra,
        log_path.open("w", encoding="utf-8") as log,
    ):
        database_url = fresh_database(infra, database)
        console = launcher._Console(log)  # the launcher's line-serialising sink, to a file
        base = {**os.environ, **(settings or {})}
        started: list[launcher.ServiceProcess] = []
        processes: dict[str, launcher.ServiceProcess] = {}
        environments = {
            spec.name: launcher.service_environment(
                spec,
                database_url=database_url,
                kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
                jwks_url=key.jwks_url,
                base=base,
                secrets=secrets,
            )
            for spec in specs
        }
        try:
            # Each service migrates its own schema: no order between them, so all at once.
            with ThreadPoolExecutor(max_workers=len(specs)) as pool:
                list(pool.map(lambda spec: launcher.migrate(spec, environments[spec.name]), specs))
            for spec in specs:
                started.append(launcher.start_service(spec, environments[spec.name], console))
            launcher.wait_until_ready(started, threading.Event())
            processes.update({process.spec.name: process for process in started})
            yield Platform(
                endpoints=Endpoints({spec.name: spec.url for spec in specs}),
                private_jwk_path=key.private_jwk_path,
                issuer=launcher.DEV_ISSUER,
                audience=launcher.AUDIENCE,
                infrastructure=infra,
                database_url=database_url,
                log_path=log_path,
                processes=processes,
                environments=environments,
                console=console,
            )
        finally:
            launcher.stop_services(list(processes.values()) if processes else started)
