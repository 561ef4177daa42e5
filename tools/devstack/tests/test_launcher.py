"""`maillage up` end to end, with a stand-in service package on PYTHONPATH."""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from maillage_devstack.dev_secrets import ensure_dev_secrets
from maillage_devstack.infra import free_port, run_psql
from maillage_devstack.launcher import SERVICES, ServiceSpec, select_services, service_environment

_APP = """
import json
import os

VARIABLES = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTH_JWKS_URL", "AUTH_ISSUER",
             "AUTH_AUDIENCE", "SERVICE_NAME")


def create_app():
    if os.environ.get("FAKE_SERVICE_FAILS"):
        raise RuntimeError("the stand-in service fails on purpose")
    print("stand-in service created", flush=True)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = json.dumps({name: os.environ.get(name) for name in VARIABLES}).encode()
        status = 200 if scope["path"] == "/readyz" else 404
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
"""

_MIGRATE = """
import os
from maillage_devstack.infra import run_psql

run_psql(os.environ["DATABASE_URL"], "CREATE TABLE IF NOT EXISTS fake_migrated (id int);")
print("stand-in migrated")
"""


@pytest.fixture
def stand_in_package() -> Iterator[Path]:
    """A package `fakesvc` with app:create_app and db.migrate, as a real service has."""
    with tempfile.TemporaryDirectory(prefix="maillage-launcher-") as root:
        package = Path(root) / "fakesvc"
        (package / "db").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "db" / "__init__.py").write_text("")
        (package / "app.py").write_text(textwrap.dedent(_APP))
        (package / "db" / "migrate.py").write_text(textwrap.dedent(_MIGRATE))
        yield Path(root)


class _Launcher:
    """`run_up` in a child process, its output collected line by line."""

    def __init__(self, root: Path, port: int, environment: Mapping[str, str]) -> None:
        script = (
            "import sys; from pathlib import Path;"
            " from maillage_devstack.launcher import ServiceSpec, run_up;"
            f" sys.exit(run_up(catalogue=[ServiceSpec('fake', 'fakesvc', {port})],"
            f" state_dir=Path({str(root / 'state')!r})))"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", script],
            env=dict(environment),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} not printed; output:\n" + "\n".join(self.lines))
            try:
                self.lines.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                continue

    def finish(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        time.sleep(0.1)
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return code

    def ensure_gone(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _environment(root: Path, **overrides: str) -> dict[str, str]:
    environment = {**os.environ, **overrides}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH", "")])
    )
    return environment


def test_service_environment_overrides_the_parent() -> None:
    spec = SERVICES[1]
    environment = service_environment(
        spec,
        database_url="postgresql://postgres@127.0.0.1:1/maillage",
        kafka_bootstrap_servers="127.0.0.1:2",
        jwks_url="file:///keys/jwks.json",
        base={"DATABASE_URL": "postgresql://elsewhere/x", "LOG_LEVEL": "DEBUG", "A": "env"},
        secrets={"A": "generated", "B": "generated"},
    )
    assert environment["DATABASE_URL"] == "postgresql://postgres@127.0.0.1:1/maillage"
    assert environment["A"] == "env", "the environment wins over generated secrets"
    assert environment["B"] == "generated"
    assert environment["SERVICE_NAME"] == "booking"
    assert environment["AUTH_ISSUER"] == "maillage-dev"
    assert environment["LOG_LEVEL"] == "DEBUG"


def test_services_are_selected_in_catalogue_order() -> None:
    assert [spec.name for spec in select_services(["statistics", "directory"])] == [
        "directory",
        "statistics",
    ]
    assert [spec.port for spec in select_services(None)] == [8101, 8102, 8103, 8104, 8105]


@pytest.mark.integration
def test_up_migrates_starts_and_stops_on_sigterm(stand_in_package: Path) -> None:
    # No KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL: the launcher starts its own, as `make up` does.
    environment = _environment(stand_in_package)
    environment.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    environment.pop("DATABASE_URL", None)
    port = free_port()
    launcher = _Launcher(stand_in_package, port, environment)
    try:
        launcher.wait_for("Maillage is up.")
        launcher.wait_for("Ctrl-C stops everything.")
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False)
        assert ready.status_code == 200
        seen = ready.json()
        assert seen["SERVICE_NAME"] == "fake"
        assert seen["AUTH_ISSUER"] == "maillage-dev"
        assert seen["AUTH_AUDIENCE"] == "maillage"
        assert seen["AUTH_JWKS_URL"] == (stand_in_package / "state/dev-keys/jwks.json").as_uri()
        assert seen["DATABASE_URL"].endswith("/maillage")
        assert run_psql(seen["DATABASE_URL"], "SELECT to_regclass('fake_migrated');").strip()

        launcher.process.send_signal(signal.SIGTERM)
        assert launcher.finish() == 0
    finally:
        launcher.ensure_gone()
    output = "\n".join(launcher.lines)
    assert any(
        line.startswith("fake ") and line.endswith("| stand-in service created")
        for line in launcher.lines
    )
    assert f"http://127.0.0.1:{port}/docs" in output
    assert "maillage token --role coordinator" in output
    assert output.rstrip().endswith("stopped.")


@pytest.mark.integration
def test_up_fails_when_a_service_dies(
    stand_in_package: Path, kafka_bootstrap_servers: str, database_url: str
) -> None:
    # External infrastructure this time: the session's, named in the environment.
    environment = _environment(
        stand_in_package,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
        DATABASE_URL=database_url,
        FAKE_SERVICE_FAILS="1",
    )
    launcher = _Launcher(stand_in_package, free_port(), environment)
    try:
        assert launcher.finish(timeout=90) == 1
    finally:
        launcher.ensure_gone()
    output = "\n".join(launcher.lines)
    assert "fake exited with code" in output
    assert "the stand-in service fails on purpose" in output


def test_spec_url() -> None:
    assert ServiceSpec("x", "x", 9).url == "http://127.0.0.1:9"


def test_dev_secrets_are_made_once_private_and_of_the_right_shape(tmp_path: Path) -> None:
    first = ensure_dev_secrets(tmp_path)
    assert ensure_dev_secrets(tmp_path) == first
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o777 == 0o600
    assert len(base64.urlsafe_b64decode(first["BOOKING_PATIENT_KEY"])) == 32  # a Fernet key
    assert len(first["SIGNALLING_JOIN_TOKEN_SECRET"]) >= 32
