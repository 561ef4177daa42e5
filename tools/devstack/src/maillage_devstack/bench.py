"""`maillage bench`: a registry of benchmarks, run by name.

To add one, put a module in `maillage_devstack/benchmarks/` that decorates a callable
with `@benchmark("name")`: every module there is imported when benchmarks are listed.
A benchmark returns its exit code (None meaning success); results go under `bench-results/`.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import httpx

from maillage_devstack.infra import free_port

BenchmarkFunction = Callable[[], int | None]

BENCHMARK_PACKAGE = "maillage_devstack.benchmarks"
RESULTS_DIRECTORY = Path("bench-results")
REPORT_PATH = Path("BENCHMARKS.md")


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A named benchmark and the one-line description `maillage bench --list` shows."""

    name: str
    description: str
    run: BenchmarkFunction


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register the decorated callable under `name` (its docstring's first line describes it)."""

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        if name in _REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        description = (function.__doc__ or "").strip().split("\n", 1)[0]
        _REGISTRY[name] = Benchmark(name, description, function)
        return function

    return register


def registered_benchmarks() -> dict[str, Benchmark]:
    """Every benchmark, after importing the modules of the benchmark package."""
    package = importlib.import_module(BENCHMARK_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__, f"{BENCHMARK_PACKAGE}."):
        importlib.import_module(module.name)
    return dict(_REGISTRY)


def run_benchmarks(names: Sequence[str], stream: TextIO, *, list_only: bool = False) -> int:
    """Run the named benchmarks (all when none is named); the first non-zero exit code wins."""
    available = registered_benchmarks()
    if not available:
        stream.write("no benchmarks yet\n")
        return 0
    if list_only:
        for entry in available.values():
            stream.write(f"{entry.name}\t{entry.description}\n")
        return 0
    unknown = sorted(set(names) - set(available))
    if unknown:
        stream.write(f"unknown benchmark(s): {', '.join(unknown)}\n")
        return 2
    exit_code = 0
    load_before = _load_average()
    selected = list(names) or list(available)
    for name in selected:
        stream.write(f"== {name}\n")
        stream.flush()
        result = available[name].run() or 0
        exit_code = exit_code or result
    # The report lists every benchmark, each with its own date, so running one benchmark
    # refreshes its section without dropping the others.
    report = write_report(
        RESULTS_DIRECTORY,
        REPORT_PATH,
        list(available),
        load_before=load_before,
        load_after=_load_average(),
    )
    stream.write(f"report written to {report}\n")
    return exit_code


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure beside the baseline measured in the same run."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    target: str = ""


@dataclass
class Results:
    """Collects a benchmark's figures, prints them side by side and writes JSON."""

    benchmark: str
    figures: list[Figure] = field(default_factory=list)
    parameters: dict[str, object] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)

    def table(self) -> str:
        lines = [
            "| figure | measured | baseline (same run) | target |",
            "|---|---|---|---|",
        ]
        for f in self.figures:
            lines.append(
                f"| {f.name} | {f.value:,.1f} {f.unit} "
                f"| {f.baseline_name}: {f.baseline_value:,.1f} {f.unit} | {f.target} |"
            )
        return "\n".join(lines)

    def write(self, directory: Path = RESULTS_DIRECTORY) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.benchmark}.json"
        document = {
            "benchmark": self.benchmark,
            "measured_at": datetime.now(UTC).isoformat(),
            "machine": machine_description(),
            "parameters": self.parameters,
            "figures": [asdict(f) for f in self.figures],
        }
        path.write_text(json.dumps(document, indent=2))
        return path


def machine_description() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "memory_gib": _memory_gib(),
    }


def _cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def _memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def _load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def _report_sections(report_path: Path) -> dict[str, str]:
    """The `## name` sections of an existing report, by benchmark name."""
    if not report_path.exists():
        return {}
    sections: dict[str, str] = {}
    for chunk in report_path.read_text().split("\n## ")[1:]:
        name = chunk.split("\n", 1)[0].strip()
        sections[name] = f"## {chunk.rstrip()}\n"
    return sections


def write_report(
    results_directory: Path,
    report_path: Path,
    benchmarks: Sequence[str],
    *,
    load_before: tuple[float, float, float] | None = None,
    load_after: tuple[float, float, float] | None = None,
) -> Path:
    """Gather the JSON results of `benchmarks` into one Markdown table per benchmark.

    Load averages are printed because a figure means little without them: on a shared
    machine the same-run baseline moves with the load, and that is why it sits beside it.
    """
    sections: list[str] = []
    machines: list[dict[str, object]] = []
    earlier = _report_sections(report_path)
    for name in benchmarks:
        path = results_directory / f"{name}.json"
        if not path.exists():
            # Results are not committed (bench-results/ is ignored): a fresh checkout running
            # one benchmark keeps the others' last committed figures, dated as they were.
            sections.append(earlier.get(name, f"## {name}\n\nnot run yet\n"))
            continue
        document = json.loads(path.read_text())
        if "figures" not in document:
            sections.append(f"## {name}\n\n{path} is not in the Results format\n")
            continue
        machines.append(document.get("machine", {}))
        results = Results(
            document["benchmark"],
            [Figure(**figure) for figure in document.get("figures", [])],
            document.get("parameters", {}),
        )
        parameters = ", ".join(f"{key}={value}" for key, value in results.parameters.items())
        sections.append(
            f"## {name}\n\nmeasured {document.get('measured_at', '?')}"
            + (f"; parameters: {parameters}" if parameters else "")
            + f"\n\n{results.table()}\n"
        )
    machine = machines[0] if machines else machine_description()
    header = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`maillage bench`): every figure sits beside a baseline measured"
        " in the same run on the same machine (raw asyncpg, raw aiokafka, raw WebSocket echo,"
        " raw aiortc loopback). Compare each figure with its baseline, not with another machine.",
        "",
        "machine: " + ", ".join(f"{key} {value}" for key, value in machine.items()),
        f"load average (1, 5, 15 min) of the last run, before: {_format_load(load_before)};"
        f" after: {_format_load(load_after)}",
        "",
    ]
    report_path.write_text("\n".join(header) + "\n" + "\n".join(sections))
    return report_path


def _format_load(load: tuple[float, float, float] | None) -> str:
    return "unknown" if load is None else " ".join(f"{value:.2f}" for value in load)


class ServiceProcess:
    """A service as a uvicorn subprocess (its own process, as in production).

    `with ServiceProcess("maillage_booking", environment) as base_url:` starts it on a free
    port, waits for /healthz and stops it on exit; its output goes to bench-results/.
    `workers=N` (N > 1) runs `uvicorn --workers N`, one process per core as a deployment
    does: `pid` is then the master's, the workers are its children, and the service counts
    as started once every worker has logged the end of its startup (a worker still importing
    would leave the first one to accept every keep-alive connection of the benchmark).
    """

    def __init__(self, package: str, environment: Mapping[str, str], workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._package = package
        self._workers = workers
        self._port = free_port()
        self._environment = {**os.environ, **environment}
        self._log = Path("bench-results") / f"{package}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            *("-m", "uvicorn", f"{self._package}.app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(self._port), "--no-access-log"),
            *("--timeout-keep-alive", "60"),
        ]
        if self._workers == 1:
            command += ["--log-level", "warning"]
        else:
            # uvicorn logs each worker's "Application startup complete." at info level (and
            # nothing per request: the access log is off).
            command += ["--log-level", "info", "--workers", str(self._workers)]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(command, env=self._environment, stdout=log, stderr=log)
        base_url = f"http://127.0.0.1:{self._port}"
        # Several workers importing the service at once on a busy shared machine are slow.
        deadline = time.monotonic() + 60 * self._workers
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200 and (
                    self._started_workers() >= self._workers
                ):
                    return base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self._package} did not start: {self._log.read_text()[-2000:]}")

    def _started_workers(self) -> int:
        if self._workers == 1:
            return 1
        return self._log.read_text(errors="replace").count("Application startup complete")

    @property
    def pid(self) -> int | None:
        """The process id of the service (of the uvicorn master when there are workers)."""
        return None if self._process is None else self._process.pid

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
