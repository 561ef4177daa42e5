"""`maillage bench directory`: search latency under concurrent clients, beside raw asyncpg.

Seeds N professionals and M sites (Grand Est communes, random points), starts the
directory as a uvicorn subprocess, then fires public searches (specialty + within R km of
a city, 20 per page) from C concurrent clients and reports p50/p95. The baseline runs
the very same SQL statement (compiled from the service's query builder) through a raw
asyncpg pool of the service's pool size, under the same load.

The HTTP clients are plain keep-alive HTTP/1.1 connections on asyncio streams: httpx
spent more CPU per request than the service, so it measured itself. The service's own CPU
time per request (from /proc) is reported too: unlike latencies it does not depend on
what else the machine runs, so runs on a busy machine stay comparable. The load average
at the start is recorded with the parameters.

Two load models, both beside raw asyncpg running the same SQL under the same load:

- Closed loop (saturation / capacity): C clients that never pause, each sending its next
  search the moment the previous answer arrives. This measures throughput; its latency is
  mostly queueing (Little's law: p95 < 20 ms with 50 such clients needs > 2,500 req/s).
- Open loop (the issue's target): C clients with think time, each sending at Poisson
  (exponential) gaps so the aggregate is BENCH_DIRECTORY_RATE req/s. Latency counts from
  each request's *scheduled* send time, so a request that waits behind a slow one counts
  its wait (no coordinated omission). A short sweep then finds the highest rate (of a
  fixed ladder) whose open-loop p95 stays under 20 ms.

PostgreSQL's own CPU per query (all its processes, from /proc, less its idle background)
is reported as well: the search's SQL cost, independent of the load average.

Knobs: BENCH_DIRECTORY_PROFESSIONALS (20000), BENCH_DIRECTORY_SITES (5000),
BENCH_DIRECTORY_REQUESTS (1000, closed loop), BENCH_DIRECTORY_CONCURRENCY (50),
BENCH_DIRECTORY_RATE (200, open loop), BENCH_DIRECTORY_SECONDS (6, open loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from maillage_common.auth.keys import ensure_dev_signing_key
from maillage_common.db.migrations import upgrade
from maillage_devstack.bench import Figure, Results, ServiceProcess, benchmark
from maillage_devstack.benchmarks.http_client import KeepAliveClient
from maillage_devstack.infra import Infrastructure, provide_infrastructure
from maillage_directory.db.migrate import MIGRATIONS
from maillage_directory.db.search import Criteria, professional_query, site_query
from maillage_directory.db.tables import professionals, sites
from maillage_directory.domain.geography import communes
from maillage_directory.domain.specialties import specialty_list
from maillage_directory.settings import DirectorySettings
from maillage_directory.use_cases.aggregates import PROFESSIONAL, SITE

GRAND_EST = ("08", "10", "51", "52", "54", "55", "57", "67", "68", "88")
CITIES = [(48.5734, 7.7521), (49.1193, 6.1757), (48.6921, 6.1844), (49.2583, 4.0317)]
RADIUS_KM = 50.0
_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
SEQUENTIAL_REQUESTS = 200
POOL_SIZE = 10  # the service's default: pool 10 + overflow 10
# Peak search rate of a regional directory: Grand Est has ~25,000 professionals and
# sites; if a tenth of them searched at once in the busiest hour, each refining a search
# every 15 s (filters changed one at a time), that is ~170 req/s. 200 req/s covers it,
# and is far above what a regional teleexpertise directory sees on an average day.
OPEN_LOOP_RATE = 200.0
# Rates tried (in order, stopping at the first miss) for the highest rate under target.
RATE_LADDER = (50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0, 800.0, 1200.0)
LADDER_SECONDS = 2.0
LADDER_SAMPLES = 300
TARGET_P95_MS = 20.0


@benchmark("directory")
def run() -> int:
    """Directory search p95 with concurrent clients vs raw asyncpg of the same SQL."""
    counts: dict[str, object] = {
        "professionals": int(os.environ.get("BENCH_DIRECTORY_PROFESSIONALS", "20000")),
        "sites": int(os.environ.get("BENCH_DIRECTORY_SITES", "5000")),
        "requests": int(os.environ.get("BENCH_DIRECTORY_REQUESTS", "1000")),
        "concurrency": int(os.environ.get("BENCH_DIRECTORY_CONCURRENCY", "50")),
        "open_loop_rate_per_s": float(os.environ.get("BENCH_DIRECTORY_RATE", str(OPEN_LOOP_RATE))),
        "open_loop_seconds": float(os.environ.get("BENCH_DIRECTORY_SECONDS", "6")),
        # Other processes share the cores: read the latencies with this in mind.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count() or 0,
    }
    with (
        tempfile.TemporaryDirectory(prefix="maillage-bench-directory-") as root,
        provide_infrastructure(Path(root), durable=False) as infra,
    ):
        settings = _settings(infra, Path(root))
        upgrade(settings, MIGRATIONS)
        asyncio.run(_seed(settings, int(str(counts["professionals"])), int(str(counts["sites"]))))
        service = _service(settings)
        postmaster = infra.postgres.pid if infra.postgres is not None else None
        with service as base_url:
            results = asyncio.run(_measure(settings, base_url, counts, _pid(service), postmaster))
    print(results.table())
    print(f"written to {results.write()}")
    return 0


def _settings(infra: Infrastructure, root: Path) -> DirectorySettings:
    key = ensure_dev_signing_key(root / "keys")
    return DirectorySettings(
        DATABASE_URL=infra.ensure_database("maillage_bench"),
        database_schema=f"bench_directory_{uuid.uuid4().hex[:8]}",
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
        AUTH_JWKS_URL=key.jwks_url,
        AUTH_ISSUER="bench",
        LOG_LEVEL="WARNING",
    )


def _fake_professional(rng: random.Random, index: int, places: list[str]) -> dict[str, Any]:
    codes = list(specialty_list().by_code)
    commune = rng.choice(places)
    departement = communes()[commune].departement
    return {
        "rpps": f"9{index:010d}",
        "family_name": f"Nom{index:05d}",
        "given_name": "Bench",
        "profession_code": "10",
        "specialty_codes": sorted(rng.sample(codes, rng.randint(1, 2))),
        "acts": sorted(rng.sample(["teleconsultation", "teleexpertise", "telesoin"], 2)),
        "departements": sorted({departement, rng.choice(GRAND_EST)}),
        "practice_locations": [
            {
                "name": "",
                "commune_insee": commune,
                "location": {
                    "latitude": rng.uniform(47.5, 50.0),
                    "longitude": rng.uniform(3.5, 8.1),
                },
            }
        ],
        "languages": ["fr"] + (["de"] if rng.random() < 0.3 else []),
        "technical_solution": {
            "vendor": rng.choice(["Medaviz", "Omnidoc", "Tokeet"]),
            "product": "",
        },
        "usual_expertise_response_hours": rng.choice([0, 24, 48, 72, 168]),
        "accepts_external_patients": rng.random() < 0.5,
        "contact_phone": "",
        "mssante_address": "",
    }


def _fake_site(rng: random.Random, index: int, places: list[str]) -> dict[str, Any]:
    commune = rng.choice(places)
    return {
        "name": f"Site {index:05d}",
        "finess": "",
        "siret": "",
        "category": rng.choice(["ehpad", "msp", "pharmacie", "centre_de_sante"]),
        "deployment_model": "site_classique",
        "commune_insee": commune,
        "departement": communes()[commune].departement,
        "location": {"latitude": rng.uniform(47.5, 50.0), "longitude": rng.uniform(3.5, 8.1)},
        "rural": rng.random() < 0.5,
        "under_served": rng.random() < 0.3,
        "specialties_needed": sorted(rng.sample(list(specialty_list().by_code), 2)),
        "equipment": {"kiosks": 1, "connected_devices": []},
        "technical_solution": {"vendor": "Medaviz", "product": ""},
        "receives_external_patients": rng.random() < 0.5,
        "opening_hours": {"timezone": "Europe/Paris", "weekly": [], "exceptions": [], "note": ""},
        "responsible": "",
        "contact_phone": "",
    }


async def _seed(settings: DirectorySettings, n_professionals: int, n_sites: int) -> None:
    """Bulk rows through the service's own column derivation (not the API: seeding only)."""
    rng = random.Random(42)  # noqa: S311 - reproducible fake data
    places = [c.code for c in communes().values() if c.departement in GRAND_EST]
    now = datetime.now(UTC)
    engine = create_async_engine(
        settings.database_url,
        connect_args={"server_settings": {"search_path": settings.owned_schema}},
    )
    try:
        for table, kind, make, count in (
            (professionals, PROFESSIONAL, _fake_professional, n_professionals),
            (sites, SITE, _fake_site, n_sites),
        ):
            rows = []
            for index in range(count):
                data = make(rng, index, places)
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "version": 1,
                        "active": True,
                        "data": data,
                        "created_at": now,
                        "updated_at": now,
                        **kind.columns(data),
                    }
                )
            async with engine.begin() as connection:
                for start in range(0, len(rows), 2000):
                    await connection.execute(insert(table), rows[start : start + 2000])
        async with engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE professional")
            await connection.exec_driver_sql("ANALYZE site")
    finally:
        await engine.dispose()


def _service(settings: DirectorySettings) -> ServiceProcess:
    """Directory as a uvicorn subprocess (its own process, as in production)."""
    return ServiceProcess(
        "maillage_directory",
        {
            "DATABASE_URL": settings.database_url.replace("+asyncpg", ""),
            "DIRECTORY_DATABASE_SCHEMA": settings.owned_schema,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "AUTH_JWKS_URL": settings.auth_jwks_url,
            "AUTH_ISSUER": settings.auth_issuer,
            "LOG_LEVEL": "WARNING",
        },
    )


def _criteria(rng: random.Random) -> tuple[Criteria, dict[str, Any]]:
    latitude, longitude = rng.choice(CITIES)
    specialty = rng.choice(list(specialty_list().by_code))
    criteria = Criteria(
        specialties=[specialty],
        latitude=latitude,
        longitude=longitude,
        radius_km=RADIUS_KM,
        local_departement=None,
        limit=20,
        documents=True,
        redact=("contact_phone", "mssante_address"),
    )
    params = {"specialty": specialty, "lat": latitude, "lon": longitude, "radius_km": RADIUS_KM}
    return criteria, params


One = Callable[[random.Random], Awaitable[None]]


async def _latencies(total: int, concurrency: int, one: One) -> tuple[list[float], float]:
    """Closed loop: `concurrency` clients, each sending as soon as its last answer came."""
    rng = random.Random(7)  # noqa: S311 - reproducible query mix
    remaining = iter(range(total))
    measured: list[float] = []

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            await one(rng)
            measured.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return measured, total / (time.perf_counter() - started)


async def _open_loop(
    rate: float, seconds: float, clients: int, one: One
) -> tuple[list[float], float]:
    """Open loop: `clients` clients with Poisson gaps adding up to `rate` requests/s.

    Each client draws its send times regardless of the answers (exponential gaps of mean
    clients/rate, for `seconds`), sends at most one request at a time, and a latency runs
    from the *scheduled* send time: when an answer is late the next request leaves late
    and its wait counts. The same seeds give raw asyncpg and HTTP the same schedule and
    the same queries. Returns the latencies (ms) and the rate offered (requests/seconds).
    """
    loop = asyncio.get_running_loop()
    mean_gap = clients / rate
    measured: list[float] = []
    origin = loop.time() + 0.05
    deadline = origin + seconds

    async def client(index: int) -> None:
        gaps = random.Random(1000 + index)  # noqa: S311 - reproducible schedule
        queries = random.Random(2000 + index)  # noqa: S311 - reproducible query mix
        scheduled = origin + gaps.expovariate(1 / mean_gap)
        while scheduled < deadline:
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await one(queries)
            measured.append((loop.time() - scheduled) * 1000)
            scheduled += gaps.expovariate(1 / mean_gap)

    await asyncio.gather(*(client(index) for index in range(clients)))
    return measured, len(measured) / seconds


async def _highest_rate(clients: int, one: One) -> float:
    """The highest rate of RATE_LADDER whose open-loop p95 stays under the target (0: none)."""
    # A discarded second first: the first requests after an idle spell run slower.
    await _open_loop(RATE_LADDER[0], 1.0, clients, one)
    best = 0.0
    for rate in RATE_LADDER:
        # At least LADDER_SAMPLES requests, so the p95 is not one unlucky request.
        seconds = max(LADDER_SECONDS, LADDER_SAMPLES / rate)
        latencies, _ = await _open_loop(rate, seconds, clients, one)
        print(f"    {rate:g} req/s: p95 {_p(latencies, 0.95):.1f} ms", flush=True)
        if _p(latencies, 0.95) >= TARGET_P95_MS:
            break
        best = rate
    return best


def _compiled(criteria: Criteria, kind: str) -> tuple[str, list[Any]]:
    key = (kind, criteria.latitude, criteria.longitude, tuple(criteria.specialties))
    return _compiled_once(key, criteria)


_COMPILED: dict[tuple[Any, ...], tuple[str, list[Any]]] = {}


def _compiled_once(key: tuple[Any, ...], criteria: Criteria) -> tuple[str, list[Any]]:
    # Cached: the baseline should pay for the database, not for building the SQL text.
    if key in _COMPILED:
        return _COMPILED[key]
    kind = key[0]
    if kind == "site":
        criteria = dataclasses.replace(criteria, redact=("contact_phone", "responsible"))
    query = professional_query(criteria) if kind == "professional" else site_query(criteria)
    compiled = query.statement.compile(dialect=_DIALECT)
    names = compiled.positiontup or []
    values = compiled.construct_params(query.parameters)
    _COMPILED[key] = (str(compiled), [values[name] for name in names])
    return _COMPILED[key]


@contextlib.asynccontextmanager
async def _raw(settings: DirectorySettings, kind: str) -> AsyncIterator[One]:
    """Send one search's SQL through a raw asyncpg pool of the service's pool size."""
    pool = await asyncpg.create_pool(
        settings.database_url.replace("+asyncpg", ""),
        min_size=POOL_SIZE,
        max_size=POOL_SIZE * 2,
        server_settings={"search_path": f"{settings.owned_schema},public"},
    )

    async def one(rng: random.Random) -> None:
        sql, params = _compiled(_criteria(rng)[0], kind)
        async with pool.acquire() as connection:
            await connection.fetch(sql, *params)

    try:
        await _latencies(200, POOL_SIZE, one)  # warm up plans and connections
        yield one
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def _http(base_url: str, kind: str, clients: int) -> AsyncIterator[One]:
    """Send one search to the service over keep-alive connections (one per client in flight)."""
    path = "/search/professionals" if kind == "professional" else "/search/sites"
    client = KeepAliveClient(base_url)

    async def one(rng: random.Random) -> None:
        target = f"{path}?{httpx.QueryParams(_criteria(rng)[1])}"
        answer = await client.get(target)
        if answer.status_code != 200:
            raise RuntimeError(f"{target} answered {answer.status_code}")

    try:
        await _latencies(200, clients, one)
        yield one
    finally:
        await client.aclose()


def _pid(service: ServiceProcess) -> int | None:
    process = getattr(service, "_process", None)  # the harness keeps its Popen private
    return None if process is None else int(process.pid)


async def _idle_cpu_rate(pid: int | None, seconds: float = 3.0) -> float:
    """CPU seconds per second the service uses with no request (its background tasks)."""
    before = _cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (_cpu_seconds(pid) - before) / seconds


def _postgres_cpu(postmaster: int | None) -> float:
    """CPU seconds used so far by PostgreSQL: the postmaster, its live children (backends,
    autovacuum...) and the children it has reaped (closed connections)."""
    if postmaster is None:
        return float("nan")
    total = _cpu_seconds(postmaster, with_reaped_children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += _cpu_seconds(int(entry.name))
    return total


def _cpu_seconds(pid: int | None, *, with_reaped_children: bool = False) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@dataclasses.dataclass
class _Run:
    """One load model's latencies, rate and PostgreSQL CPU per request."""

    latencies: list[float]
    rate: float
    postgres_cpu_ms: float


@dataclasses.dataclass
class _Kind:
    """Everything measured for one kind of search (professionals or sites)."""

    raw_alone: _Run
    api_alone: _Run
    raw: _Run
    api: _Run
    service_cpu_ms: float
    raw_open: _Run
    api_open: _Run
    raw_best: float
    api_best: float


class _Meter:
    """Runs a load and charges PostgreSQL's CPU to it, less its idle background."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster
        self.idle_rate = 0.0

    async def calibrate(self, seconds: float = 3.0) -> None:
        """PostgreSQL CPU seconds per second with no search (the service's relay polls)."""
        before = _postgres_cpu(self.postmaster)
        await asyncio.sleep(seconds)
        self.idle_rate = (_postgres_cpu(self.postmaster) - before) / seconds

    async def run(self, load: Callable[[], Awaitable[tuple[list[float], float]]]) -> _Run:
        before, started = _postgres_cpu(self.postmaster), time.perf_counter()
        latencies, rate = await load()
        background = self.idle_rate * (time.perf_counter() - started)
        used = _postgres_cpu(self.postmaster) - before - background
        return _Run(latencies, rate, used * 1000 / len(latencies))


async def _measure(
    settings: DirectorySettings,
    base_url: str,
    counts: dict[str, object],
    pid: int | None,
    postmaster: int | None,
) -> Results:
    results = Results("directory", parameters=dict(counts))
    total, clients = int(str(counts["requests"])), int(str(counts["concurrency"]))
    rate = float(str(counts["open_loop_rate_per_s"]))
    seconds = float(str(counts["open_loop_seconds"]))
    meter = _Meter(postmaster)
    for kind, label in (("professional", "professionals"), ("site", "sites")):
        async with _raw(settings, kind) as raw_one, _http(base_url, kind, clients) as api_one:
            idle_rate = await _idle_cpu_rate(pid)
            await meter.calibrate()
            # One client at a time: the latency of a request when nothing queues.
            raw_alone = await meter.run(lambda: _latencies(SEQUENTIAL_REQUESTS, 1, raw_one))
            api_alone = await meter.run(lambda: _latencies(SEQUENTIAL_REQUESTS, 1, api_one))
            print(f"  {label}: open loop at {rate:g} req/s…", flush=True)
            raw_open = await meter.run(lambda: _open_loop(rate, seconds, clients, raw_one))
            api_open = await meter.run(lambda: _open_loop(rate, seconds, clients, api_one))
            print(f"  {label}: closed loop…", flush=True)
            raw = await meter.run(lambda: _latencies(total, clients, raw_one))
            cpu_before, started = _cpu_seconds(pid), time.perf_counter()
            api = await meter.run(lambda: _latencies(total, clients, api_one))
            # Less what the service burns anyway (outbox relay, metrics) over the same time.
            background = idle_rate * (time.perf_counter() - started)
            cpu_ms = (_cpu_seconds(pid) - cpu_before - background) * 1000 / total
            print(f"  {label}: highest rate under {TARGET_P95_MS:g} ms…", flush=True)
            raw_best = await _highest_rate(clients, raw_one)
            api_best = await _highest_rate(clients, api_one)
        measured = _Kind(
            raw_alone, api_alone, raw, api, cpu_ms, raw_open, api_open, raw_best, api_best
        )
        _add_figures(results, label, clients, rate, measured)
    return results


def _add_figures(results: Results, label: str, clients: int, rate: float, m: _Kind) -> None:
    target = f"p95 < {TARGET_P95_MS:g} ms"
    open_loop = f"{clients} clients, Poisson {rate:g} req/s in all, from scheduled send"
    closed_loop = f"saturation: {clients} clients with no think time"
    figures = [
        # The issue's target: concurrent clients with think time, queueing included.
        *(
            Figure(
                f"search {label} {name} (HTTP open loop: {open_loop})",
                _p(m.api_open.latencies, q),
                "ms",
                f"raw asyncpg same SQL, same schedule, {name}",
                _p(m.raw_open.latencies, q),
                target if name == "p95" else "",
            )
            for name, q in (("p50", 0.50), ("p95", 0.95))
        ),
        Figure(
            f"search {label} open-loop rate offered (Poisson draw)",
            m.api_open.rate,
            "req/s",
            "raw asyncpg",
            m.raw_open.rate,
        ),
        Figure(
            f"search {label} highest open-loop rate with p95 < {TARGET_P95_MS:g} ms "
            f"(tried {', '.join(f'{r:g}' for r in RATE_LADDER)}; 0 = none)",
            m.api_best,
            "req/s",
            "raw asyncpg",
            m.raw_best,
        ),
        # Capacity: how many searches per second the service and PostgreSQL can sustain.
        *(
            Figure(
                f"search {label} {name} (HTTP closed loop, {closed_loop})",
                _p(m.api.latencies, q),
                "ms",
                f"raw asyncpg same SQL {name}",
                _p(m.raw.latencies, q),
            )
            for name, q in (("p50", 0.50), ("p95", 0.95))
        ),
        Figure(
            f"search {label} capacity (closed-loop throughput)",
            m.api.rate,
            "req/s",
            "raw asyncpg",
            m.raw.rate,
        ),
        # CPU per request: unlike latencies, it barely moves with the machine's load.
        Figure(
            f"search {label} service CPU per request (background subtracted)",
            m.service_cpu_ms,
            "ms",
            "raw asyncpg client time per query (wall, 1 client)",
            statistics.fmean(m.raw_alone.latencies),
        ),
        Figure(
            f"search {label} PostgreSQL CPU per request (HTTP, 1 client)",
            m.api_alone.postgres_cpu_ms,
            "ms",
            "raw asyncpg, 1 client",
            m.raw_alone.postgres_cpu_ms,
        ),
        *(
            Figure(
                f"search {label} {name} (HTTP, 1 client)",
                _p(m.api_alone.latencies, q),
                "ms",
                f"raw asyncpg same SQL {name}, 1 client",
                _p(m.raw_alone.latencies, q),
            )
            for name, q in (("p50", 0.50), ("p95", 0.95))
        ),
    ]
    for figure in figures:
        results.add(figure)


if __name__ == "__main__":
    sys.exit(run())
