"""`maillage bench directory`: search latency under concurrent clients, beside raw asyncpg.

Seeds N professionals and M sites (Grand Est communes, random points), starts the
directory as a uvicorn subprocess, then fires public searches (specialty + within R km of
a city, local first, 20 per page) from C concurrent clients and reports p50/p95. The
baseline runs the very same SQL statement (compiled from the service's query builder)
through a raw asyncpg pool of the service's pool size, with the same concurrency.

The HTTP clients are plain keep-alive HTTP/1.1 connections on asyncio streams: httpx
spent more CPU per request than the service, so it measured itself. The service's own CPU
time per request (from /proc) is reported too: unlike latencies it does not depend on
what else the machine runs, so runs on a busy machine stay comparable. The load average
at the start is recorded with the parameters.

Knobs: BENCH_DIRECTORY_PROFESSIONALS (20000), BENCH_DIRECTORY_SITES (5000),
BENCH_DIRECTORY_REQUESTS (1000), BENCH_DIRECTORY_CONCURRENCY (50).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
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


@benchmark("directory")
def run() -> int:
    """Directory search p95 with concurrent clients vs raw asyncpg of the same SQL."""
    counts: dict[str, object] = {
        "professionals": int(os.environ.get("BENCH_DIRECTORY_PROFESSIONALS", "20000")),
        "sites": int(os.environ.get("BENCH_DIRECTORY_SITES", "5000")),
        "requests": int(os.environ.get("BENCH_DIRECTORY_REQUESTS", "1000")),
        "concurrency": int(os.environ.get("BENCH_DIRECTORY_CONCURRENCY", "50")),
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
        with service as base_url:
            results = asyncio.run(_measure(settings, base_url, counts, _pid(service)))
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


async def _latencies(
    total: int, concurrency: int, one: Callable[[random.Random], Awaitable[None]]
) -> tuple[list[float], float]:
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


async def _raw(settings: DirectorySettings, kind: str, total: int, concurrency: int) -> Any:
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
        await _latencies(200, concurrency, one)  # warm up plans and connections
        return await _latencies(total, concurrency, one)
    finally:
        await pool.close()


class _KeepAlive:
    """One persistent HTTP/1.1 connection: request, read the status and the whole body."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection(*self._address)
        reader, writer = self._streams
        writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        await reader.readexactly(length)
        return int(lines[0].split(" ", 2)[1])

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


async def _http(base_url: str, kind: str, total: int, concurrency: int) -> Any:
    path = "/search/professionals" if kind == "professional" else "/search/sites"
    parsed = httpx.URL(base_url)
    free = [_KeepAlive(parsed.host, parsed.port or 80) for _ in range(concurrency)]

    async def one(rng: random.Random) -> None:
        target = f"{path}?{httpx.QueryParams(_criteria(rng)[1])}"
        connection = free.pop()
        try:
            status = await connection.get(target)
        finally:
            free.append(connection)
        if status != 200:
            raise RuntimeError(f"{target} answered {status}")

    try:
        await _latencies(200, concurrency, one)
        return await _latencies(total, concurrency, one)
    finally:
        for connection in free:
            await connection.close()


def _pid(service: ServiceProcess) -> int | None:
    process = getattr(service, "_process", None)  # the harness keeps its Popen private
    return None if process is None else int(process.pid)


async def _idle_cpu_rate(pid: int | None, seconds: float = 3.0) -> float:
    """CPU seconds per second the service uses with no request (its background tasks)."""
    before = _cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (_cpu_seconds(pid) - before) / seconds


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time the service process has used so far (Linux /proc)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _measure(
    settings: DirectorySettings, base_url: str, counts: dict[str, object], pid: int | None
) -> Results:
    results = Results("directory", parameters=dict(counts))
    total, concurrency = int(str(counts["requests"])), int(str(counts["concurrency"]))
    for kind, label in (("professional", "professionals"), ("site", "sites")):
        # One client at a time: the latency of a request when nothing queues.
        raw_alone, _ = await _raw(settings, kind, SEQUENTIAL_REQUESTS, 1)
        api_alone, _ = await _http(base_url, kind, SEQUENTIAL_REQUESTS, 1)
        print(f"  {label}: raw asyncpg…", flush=True)
        raw, raw_rate = await _raw(settings, kind, total, concurrency)
        print(f"  {label}: HTTP…", flush=True)
        idle_rate = await _idle_cpu_rate(pid)
        cpu_before, started = _cpu_seconds(pid), time.perf_counter()
        api, api_rate = await _http(base_url, kind, total, concurrency)
        # Warm-up requests included: (total + 200) requests used this CPU time, less what
        # the service burns anyway (outbox relay, metrics) over the same wall time.
        background = idle_rate * (time.perf_counter() - started)
        cpu_ms = (_cpu_seconds(pid) - cpu_before - background) * 1000 / (total + 200)
        for name, q in (("p50", 0.50), ("p95", 0.95)):
            results.add(
                Figure(
                    f"search {label} {name} (HTTP, {concurrency} clients)",
                    _p(api, q),
                    "ms",
                    f"raw asyncpg same SQL {name}",
                    _p(raw, q),
                    "p95 < 20 ms" if name == "p95" else "",
                )
            )
        results.add(
            Figure(f"search {label} throughput", api_rate, "req/s", "raw asyncpg", raw_rate)
        )
        results.add(
            Figure(
                f"search {label} mean", statistics.fmean(api), "ms", "raw", statistics.fmean(raw)
            )
        )
        results.add(
            Figure(
                f"search {label} service CPU per request (background subtracted)",
                cpu_ms,
                "ms",
                "raw asyncpg client time per query (wall, 1 client)",
                statistics.fmean(raw_alone),
            )
        )
        results.add(
            Figure(
                f"search {label} p95 (HTTP, 1 client)",
                _p(api_alone, 0.95),
                "ms",
                "raw asyncpg same SQL p95, 1 client",
                _p(raw_alone, 0.95),
            )
        )
    return results


if __name__ == "__main__":
    sys.exit(run())
