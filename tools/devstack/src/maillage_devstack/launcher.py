"""`maillage up`: the whole platform on one machine, each service in its own process.

Infrastructure first (embedded unless configured), then per service: migrations as a
one-off process, then uvicorn. Output is prefixed with the service name; Ctrl-C stops
services before the infrastructure they depend on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

import httpx

from maillage_devstack.dev_secrets import ensure_dev_secrets
from maillage_devstack.infra import (
    Infrastructure,
    InfrastructureError,
    port_is_free,
    preferred_port,
    provide_infrastructure,
)

HOST = "127.0.0.1"
DEV_ISSUER = "maillage-dev"
AUDIENCE = "maillage"
DATABASE_NAME = "maillage"
DEFAULT_STATE_DIR = Path(".maillage")
# Stable addresses across runs when free, so a developer's psql or kcat keeps working.
PREFERRED_KAFKA_PORT = 19092
PREFERRED_POSTGRES_PORT = 15432

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
MIGRATE_TIMEOUT_SECONDS = 300.0
_OUTPUT_TAIL_LINES = 30


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service `maillage up` can run: its name, import package and HTTP port."""

    name: str
    package: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("directory", "maillage_directory", 8101),
    ServiceSpec("booking", "maillage_booking", 8102),
    ServiceSpec("session-signalling", "maillage_session_signalling", 8103),
    ServiceSpec("telemetry", "maillage_telemetry", 8104),
    ServiceSpec("statistics", "maillage_statistics", 8105),
)


_PREFIX_WIDTH = max(len(spec.name) for spec in SERVICES)


class LaunchError(RuntimeError):
    """A service could not be migrated, started or made ready."""


def select_services(
    names: Sequence[str] | None, catalogue: Sequence[ServiceSpec] = SERVICES
) -> list[ServiceSpec]:
    """The services named (all when None), in catalogue order."""
    if not names:
        return list(catalogue)
    known = {spec.name for spec in catalogue}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [spec for spec in catalogue if spec.name in names]


def is_installed(spec: ServiceSpec) -> bool:
    return importlib.util.find_spec(spec.package) is not None


def has_migrations(spec: ServiceSpec) -> bool:
    """Whether `python -m <package>.db.migrate` exists, found without importing the service."""
    found = importlib.util.find_spec(spec.package)
    locations = found.submodule_search_locations if found else None
    return any(
        (Path(location) / "db" / "migrate.py").is_file()
        or (Path(location) / "db" / "migrate" / "__main__.py").is_file()
        for location in locations or ()
    )


def service_environment(
    spec: ServiceSpec,
    *,
    database_url: str,
    kafka_bootstrap_servers: str,
    jwks_url: str,
    base: Mapping[str, str],
    secrets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The parent environment over the dev secrets, with the platform's addresses and the
    dev issuer on top."""
    environment = {"LOG_JSON": "false", **(secrets or {}), **base}
    environment.update(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
        AUTH_JWKS_URL=jwks_url,
        AUTH_ISSUER=DEV_ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
        SERVICE_NAME=spec.name,
        # Logs must reach the prefixed console as they are written, not when a buffer fills.
        PYTHONUNBUFFERED="1",
    )
    return environment


class _Console:
    """Serialises lines from several reader threads onto one stream."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, text: str = "") -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


class ServiceProcess:
    """A running service process whose output is echoed with its name as a prefix."""

    def __init__(
        self, spec: ServiceSpec, process: subprocess.Popen[str], console: _Console
    ) -> None:
        self.spec = spec
        self.process = process
        self._tail: deque[str] = deque(maxlen=_OUTPUT_TAIL_LINES)
        self._reader = threading.Thread(
            target=self._echo, args=(console,), name=f"output-{spec.name}", daemon=True
        )
        self._reader.start()

    def _echo(self, console: _Console) -> None:
        assert self.process.stdout is not None
        prefix = f"{self.spec.name:<{_PREFIX_WIDTH}} | "
        for line in self.process.stdout:
            text = line.rstrip("\n")
            self._tail.append(text)
            console.line(prefix + text)

    @property
    def exited(self) -> bool:
        return self.process.poll() is not None

    def tail(self) -> str:
        return "\n".join(self._tail) or "(no output)"

    def terminate(self) -> None:
        if not self.exited:
            self.process.terminate()

    def wait(self, deadline: float) -> None:
        """Wait until `deadline` (monotonic), then SIGKILL."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=1.0)


def migrate(spec: ServiceSpec, environment: Mapping[str, str]) -> None:
    """Run the service's migrations to completion; LaunchError with their output on failure."""
    try:
        completed = subprocess.run(
            [sys.executable, "-m", f"{spec.package}.db.migrate"],
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise LaunchError(f"{spec.name}: migrations still running after the timeout") from error
    if completed.returncode != 0:
        raise LaunchError(
            f"{spec.name}: migrations failed with code {completed.returncode}:\n"
            f"{completed.stdout}{completed.stderr}"
        )


def start_service(
    spec: ServiceSpec, environment: Mapping[str, str], console: _Console
) -> ServiceProcess:
    if not port_is_free(spec.port):
        raise LaunchError(f"{spec.name}: port {spec.port} is in use (another `maillage up`?)")
    command = [
        sys.executable,
        *("-m", "uvicorn", f"{spec.package}.app:create_app", "--factory"),
        *("--host", HOST, "--port", str(spec.port), "--no-access-log"),
        # Half the memory per WebSocket of the default implementation (measured).
        *("--ws", "websockets-sansio"),
        # No permessage-deflate: ~50 KB of zlib state per WebSocket (session-signalling).
        *("--ws-per-message-deflate", "false"),
    ]
    # A session of its own: Ctrl-C must reach the launcher only, which stops services
    # in order and before the infrastructure.
    process = subprocess.Popen(
        command,
        env=dict(environment),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    return ServiceProcess(spec, process, console)


def _is_ready(client: httpx.Client, spec: ServiceSpec) -> bool:
    try:
        return client.get(f"{spec.url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ready(
    services: Sequence[ServiceProcess],
    stop: threading.Event,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> None:
    """Until every service answers 200 on /readyz; LaunchError naming the laggard otherwise."""
    pending = list(services)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while pending and not stop.is_set():
            for service in list(pending):
                if service.exited:
                    raise LaunchError(
                        f"{service.spec.name} exited with code {service.process.returncode}"
                        f" while starting; last output:\n{service.tail()}"
                    )
                if _is_ready(client, service.spec):
                    pending.remove(service)
            if pending and time.monotonic() > deadline:
                laggard = pending[0]
                raise LaunchError(
                    f"{laggard.spec.name} is not ready on {laggard.spec.url}/readyz after"
                    f" {timeout:.0f}s; last output:\n{laggard.tail()}"
                )
            stop.wait(0.25)


def stop_services(services: Sequence[ServiceProcess]) -> None:
    """SIGTERM every service, then SIGKILL those still running after the grace period."""
    for service in services:
        service.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for service in services:
        service.wait(deadline)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT, SIGTERM or SIGHUP, so shutdown runs in order, not mid-call."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, request_stop) for signum in watched}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def platform_infrastructure(state_dir: Path) -> Iterator[tuple[Infrastructure, str]]:
    """Durable infrastructure for a developer, and the URL of the `maillage` database."""
    with provide_infrastructure(
        state_dir,
        durable=True,
        kafka_port=preferred_port(PREFERRED_KAFKA_PORT),
        postgres_port=preferred_port(PREFERRED_POSTGRES_PORT),
    ) as infrastructure:
        yield infrastructure, infrastructure.ensure_database(DATABASE_NAME)


def describe_infrastructure(infrastructure: Infrastructure, database_url: str) -> list[str]:
    kafka_origin = "embedded" if infrastructure.kafka else "external"
    postgres_origin = "embedded" if infrastructure.postgres else "external"
    return [
        f"Kafka ({kafka_origin}): {infrastructure.kafka_bootstrap_servers}",
        f"PostgreSQL ({postgres_origin}): {database_url}",
    ]


def _summary(
    services: Sequence[ServiceProcess],
    infrastructure: Infrastructure,
    database_url: str,
    state_dir: Path,
) -> list[str]:
    header = ("service", "URL", "OpenAPI docs", "metrics")
    rows = [
        (s.spec.name, s.spec.url, f"{s.spec.url}/docs", f"{s.spec.url}/metrics") for s in services
    ]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    table = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    state_option = "" if state_dir == DEFAULT_STATE_DIR.resolve() else f" --state-dir {state_dir}"
    return [
        "",
        "Maillage is up." if services else "Infrastructure is up (no service package installed).",
        *table,
        "",
        *describe_infrastructure(infrastructure, database_url),
        "",
        f"Token (issuer {DEV_ISSUER}, audience {AUDIENCE}):",
        f"  maillage token --role coordinator{state_option}"
        " [--subject S] [--site SITE_ID] [--rpps RPPS]",
        f'  curl -H "Authorization: Bearer $(maillage token --role coordinator{state_option})"'
        f" {services[0].spec.url if services else SERVICES[0].url}/...",
        "Ctrl-C stops everything.",
        "",
    ]


def _start_all(
    specs: Sequence[ServiceSpec],
    environments: Mapping[str, dict[str, str]],
    console: _Console,
    stop: threading.Event,
    started: list[ServiceProcess],
) -> None:
    for spec in specs:
        if stop.is_set():
            return
        environment = environments[spec.name]
        if has_migrations(spec):
            console.line(f"{spec.name}: migrating…")
            migrate(spec, environment)
        else:
            console.line(f"{spec.name}: no {spec.package}.db.migrate module, no migrations")
        started.append(start_service(spec, environment, console))


def _watch(services: Sequence[ServiceProcess], stop: threading.Event) -> ServiceProcess | None:
    """Until a stop is requested (None) or a service dies (that service)."""
    while not stop.wait(0.5):
        for service in services:
            if service.exited:
                return service
    return None


def _run_services(
    specs: Sequence[ServiceSpec],
    environments: Mapping[str, dict[str, str]],
    console: _Console,
    stop: threading.Event,
    summarise: Callable[[Sequence[ServiceProcess]], list[str]],
) -> int:
    """Migrate, start and watch the services; always stop those started."""
    started: list[ServiceProcess] = []
    try:
        _start_all(specs, environments, console, stop, started)
        wait_until_ready(started, stop)
        if stop.is_set():
            return 0
        for line in summarise(started):
            console.line(line)
        dead = _watch(started, stop)
    finally:
        console.line("stopping services…")
        stop_services(started)
    if dead is None:
        return 0
    console.line(
        f"{dead.spec.name} exited with code {dead.process.returncode}; last output:\n{dead.tail()}"
    )
    return 1


def _installed(specs: Sequence[ServiceSpec], console: _Console) -> list[ServiceSpec]:
    for spec in specs:
        if not is_installed(spec):
            console.line(f"{spec.name}: package {spec.package} is not installed, skipped")
    return [spec for spec in specs if is_installed(spec)]


def run_up(
    names: Sequence[str] | None = None,
    *,
    state_dir: Path = DEFAULT_STATE_DIR,
    catalogue: Sequence[ServiceSpec] = SERVICES,
    stream: TextIO | None = None,
) -> int:
    """Run the platform until Ctrl-C/SIGTERM (exit 0) or a failure (exit 1)."""
    # Imported here: the auth package pulls in FastAPI, which `maillage --help` can do without.
    from maillage_common.auth.keys import ensure_dev_signing_key

    console = _Console(stream or sys.stdout)
    state_dir = state_dir.resolve()
    specs = _installed(select_services(names, catalogue), console)
    with stop_on_signals() as stop:
        try:
            jwks_url = ensure_dev_signing_key(state_dir / "dev-keys").jwks_path.resolve().as_uri()
            secrets = ensure_dev_secrets(state_dir)
            with platform_infrastructure(state_dir) as (infrastructure, database_url):
                environments = {
                    spec.name: service_environment(
                        spec,
                        database_url=database_url,
                        kafka_bootstrap_servers=infrastructure.kafka_bootstrap_servers,
                        jwks_url=jwks_url,
                        base=os.environ,
                        secrets=secrets,
                    )
                    for spec in specs
                }
                return _run_services(
                    specs,
                    environments,
                    console,
                    stop,
                    lambda started: _summary(started, infrastructure, database_url, state_dir),
                )
        except (InfrastructureError, LaunchError) as error:
            if stop.is_set():
                # Ctrl-C during start-up kills migrations too: not a failure to report.
                return 0
            console.line(f"maillage up failed: {error}")
            return 1
        finally:
            console.line("stopped.")
