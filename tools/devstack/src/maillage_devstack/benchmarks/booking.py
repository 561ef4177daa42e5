"""`maillage bench booking`: the hot-slot race and confirmed bookings/s, beside raw asyncpg.

Seeds a site and R responders with an all-day schedule straight into booking's read model,
starts booking as a uvicorn subprocess with W workers (one per core, as a deployment runs
it: replicas or `uvicorn --workers`; the kernel spreads the keep-alive connections over
them), then:
- hot-slot race: per round, C clients POST /appointments for the same slot at once, their
  connections spread over the workers, so the race is between processes; exactly one 201
  per round is required, and zero overlapping blocking rows (checked in SQL);
- throughput: N bookings of distinct slots from 32 clients through HTTP, beside the same
  transaction on a raw asyncpg pool with the same concurrency (the responder/schedule/site
  context read once per responder and remembered, then per booking one statement: check the
  context is current, take the queueing lock, insert the appointment — the exclusion
  constraint decides —, insert its outbox row); and the CPU time per booking of the service
  (summed over the uvicorn master and all its workers, from /proc) beside that of the raw
  client (the figure a shared machine distorts least), with the service's CPU per
  `GET /healthz` as the floor its HTTP stack costs, and the busiest worker's share of the
  workers' CPU (an uneven spread of connections caps the rate below W cores); and the
  embedded PostgreSQL's CPU per booking on both sides, whence the rate the machine's cores
  could give if the service, the database and the load generator had them to themselves.

The HTTP load generator is `http_client.KeepAliveClient` on uvloop (httpx cost more CPU per
request than the service: it shares the cores, so it capped the service).

Knobs: BENCH_BOOKING_RACE_CLIENTS (100), BENCH_BOOKING_RACE_ROUNDS (200, the issue's),
BENCH_BOOKING_BOOKINGS (1500), BENCH_BOOKING_CONCURRENCY (32), BENCH_BOOKING_WORKERS (1: in
five back-to-back pairs on the 2-core machine, one worker won four; a second worker cost
more CPU per booking, and the kernel gave it an uneven share of the connections).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import uvloop
from cryptography.fernet import Fernet

from maillage_booking.db.migrate import MIGRATIONS
from maillage_booking.settings import BookingSettings
from maillage_common.auth import Role
from maillage_common.auth.keys import ensure_dev_signing_key, mint_token
from maillage_common.db.migrations import upgrade
from maillage_devstack.bench import Figure, Results, ServiceProcess, benchmark
from maillage_devstack.benchmarks.http_client import KeepAliveClient
from maillage_devstack.infra import Infrastructure, provide_infrastructure

PARIS = ZoneInfo("Europe/Paris")
SLOT = timedelta(minutes=15)
SITE = "bench-site"
# As many connections as clients on both sides: neither pays for connection churn.
POOL_SIZE = 32


@benchmark("booking")
def run() -> int:
    """Hot-slot race (exactly one winner) and bookings/s at 32 clients vs raw asyncpg."""
    knobs = {
        "race_clients": int(os.environ.get("BENCH_BOOKING_RACE_CLIENTS", "100")),
        "race_rounds": int(os.environ.get("BENCH_BOOKING_RACE_ROUNDS", "200")),
        "bookings": int(os.environ.get("BENCH_BOOKING_BOOKINGS", "1500")),
        "concurrency": int(os.environ.get("BENCH_BOOKING_CONCURRENCY", "32")),
        "workers": int(os.environ.get("BENCH_BOOKING_WORKERS", "1")),
    }
    with (
        tempfile.TemporaryDirectory(prefix="maillage-bench-booking-") as root,
        provide_infrastructure(Path(root), durable=False) as infra,
    ):
        settings, token = _settings(infra, Path(root))
        upgrade(settings, MIGRATIONS)
        asyncio.run(_seed(settings))
        # uvloop on the load generator's side too (the service runs on it under uvicorn):
        # the HTTP client and the raw baseline share this loop, so both sides get it.
        service = _service(settings, knobs["workers"])
        with (
            service as base_url,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            assert service.pid is not None
            postmaster = infra.postgres.pid if infra.postgres is not None else None
            results, ok = runner.run(
                _measure(settings, base_url, (service.pid, postmaster), token, knobs)
            )
    # The same line as BENCHMARKS.md's, with the load the figures were measured under.
    parameters = ", ".join(f"{key}={value}" for key, value in results.parameters.items())
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"parameters: {parameters}; load average (1, 5, 15 min) after: {load}")
    print(results.table())
    print(f"written to {results.write()}")
    return 0 if ok else 1


def _settings(infra: Infrastructure, root: Path) -> tuple[BookingSettings, str]:
    key = ensure_dev_signing_key(root / "keys")
    settings = BookingSettings(
        DATABASE_URL=infra.ensure_database("maillage_bench"),
        database_schema=f"bench_booking_{uuid.uuid4().hex[:8]}",
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
        AUTH_JWKS_URL=key.jwks_url,
        AUTH_ISSUER="bench",
        LOG_LEVEL="WARNING",
        patient_key=Fernet.generate_key().decode(),
    )
    token = mint_token(
        private_jwk_path=key.private_jwk_path,
        role=Role.NURSE,
        subject="bench-nurse",
        issuer="bench",
        audience="maillage",
        site_id=SITE,
        ttl_seconds=3600,
    )
    return settings, token


def _dsn(settings: BookingSettings) -> str:
    return settings.database_url.replace("+asyncpg", "")


RESPONDERS = 60
_RULES = {
    "weekly": [{"weekday": d, "start": "08:00:00", "end": "20:00:00"} for d in range(7)],
    "closed": [],
    "opened": [],
    "slot_minutes": {"1": 15},
    "buffer_minutes": 0,
    "min_notice_minutes": 0,
    "window_days": 60,
    "visibility": "public",
}


async def _seed(settings: BookingSettings) -> None:
    connection = await asyncpg.connect(
        _dsn(settings), server_settings={"search_path": f"{settings.owned_schema},public"}
    )
    try:
        await connection.execute("INSERT INTO sites VALUES ($1, 'Bench MSP', '67', true, 1)", SITE)
        for index in range(RESPONDERS):
            pid = f"bench-pro-{index}"
            await connection.execute(
                "INSERT INTO responders VALUES ($1, $2, '{SM26}', '{1}', '{67}', true, 1, true)",
                pid,
                f"9{index:010d}",
            )
            await connection.execute(
                "INSERT INTO schedules VALUES ($1, $2, 'Europe/Paris', $3, now())",
                uuid.uuid4(),
                pid,
                json.dumps(_RULES),
            )
    finally:
        await connection.close()


def _slots(responders: range, first_day: int, days: int) -> Iterator[tuple[str, datetime]]:
    """Distinct (responder, start) pairs inside the schedule, from `first_day` days ahead."""
    today = datetime.now(PARIS).date()
    for offset in range(first_day, first_day + days):
        day: date = today + timedelta(days=offset)
        for quarter in range(48):
            start = datetime(day.year, day.month, day.day, 8, tzinfo=PARIS) + quarter * SLOT
            for index in responders:
                yield f"bench-pro-{index}", start


def _service(settings: BookingSettings, workers: int) -> ServiceProcess:
    """Booking as a uvicorn subprocess with `workers` worker processes (as in production).

    Each worker has its own pool of POOL_SIZE connections: the kernel need not spread the
    clients' connections evenly, and a worker must not wait for connections the other has
    idle (2 workers x 32 + the raw pool's 64 stay under the 200 PostgreSQL allows)."""
    return ServiceProcess(
        "maillage_booking",
        {
            "DATABASE_URL": _dsn(settings),
            "BOOKING_DATABASE_SCHEMA": settings.owned_schema,
            "BOOKING_DATABASE_POOL_SIZE": str(POOL_SIZE),
            "BOOKING_DATABASE_CONNECT_TIMEOUT_SECONDS": "30",
            "BOOKING_PATIENT_KEY": settings.patient_key,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "AUTH_JWKS_URL": settings.auth_jwks_url,
            "AUTH_ISSUER": settings.auth_issuer,
            "LOG_LEVEL": "WARNING",
        },
        workers=workers,
    )


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def _body(responder: str, start: datetime) -> dict[str, str]:
    return {"responder_id": responder, "start": start.isoformat()}


async def _race_http(
    client: KeepAliveClient, slots: Iterator[tuple[str, datetime]], clients: int, rounds: int
) -> tuple[int, list[float]]:
    """Rounds with exactly one winner; returns (good rounds, round durations in ms)."""
    good, durations = 0, []
    for _ in range(rounds):
        responder, start = next(slots)
        began = time.perf_counter()
        answers = await asyncio.gather(
            *(client.post("/appointments", json=_body(responder, start)) for _ in range(clients))
        )
        durations.append((time.perf_counter() - began) * 1000)
        codes = Counter(a.status_code for a in answers)
        good += codes == Counter({201: 1, 409: clients - 1})
    return good, durations


async def _throughput_http(
    client: KeepAliveClient, slots: Iterator[tuple[str, datetime]], total: int, concurrency: int
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    work = iter([next(slots) for _ in range(total)])

    async def worker() -> None:
        nonlocal failures
        for responder, start in work:
            began = time.perf_counter()
            answer = await client.post("/appointments", json=_body(responder, start))
            latencies.append((time.perf_counter() - began) * 1000)
            failures += answer.status_code != 201

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - began), latencies, failures


# The service's booking, hand-written on asyncpg (no HTTP, no ORM): the context (responder,
# schedule, site, with their row versions) read once per responder and remembered, as the
# service does; then per booking one statement, which checks the context is still current,
# queues behind the responder's other bookers (advisory lock), inserts the appointment (the
# exclusion constraint decides) and its outbox row, each statement its own transaction.
_RAW_CONTEXT = """
    SELECT r.id, r.active, r.specialty_codes, s.time_zone, s.rules, st.departement, st.active,
           r.xmin::text AS responder_row, s.xmin::text AS schedule_row, st.xmin::text AS site_row
    FROM (SELECT 1) AS one
    LEFT JOIN responders r ON r.id = $1
    LEFT JOIN schedules s ON s.responder_id = $1
    LEFT JOIN sites st ON st.id = $2"""
_RAW_BOOK = """
    WITH current AS (
        SELECT 1 FROM responders r
        JOIN schedules s ON s.responder_id = r.id
        JOIN sites st ON st.id = $2
        WHERE r.id = $3 AND r.active AND st.active
        AND r.xmin::text = $8 AND s.xmin::text = $9 AND st.xmin::text = $10
    ), queued AS (
        SELECT count(*) AS n FROM (
            SELECT pg_advisory_xact_lock(hashtextextended('booking:' || $3, 0)) FROM current) q
    ), inserted AS (
        INSERT INTO appointments (id, site_id, responder_id, resource_id, specialty_code, act,
            departement, patient_ref, mode, assistance, status, start_at, end_at, block_end,
            held_until, blocking, created_by, created_at, updated_at)
        SELECT $1::uuid, $2::text, $3::text, NULL, 'SM26', 1, '67', '', 1, 2, 'booked',
            $4::timestamptz, $5::timestamptz, $5::timestamptz, NULL, true, 'raw',
            $6::timestamptz, $6::timestamptz
        FROM queued, current
        ON CONFLICT DO NOTHING
        RETURNING id
    ), recorded AS (
        INSERT INTO outbox_event (event_id, topic, event_key, event_type, payload, traceparent)
        SELECT $7::uuid, 'booking.appointments', $1::text,
            'maillage.booking.v1.AppointmentBooked', $11::bytea, NULL
        FROM inserted
        RETURNING event_id
    )
    SELECT EXISTS (SELECT 1 FROM current) AS fresh,
           (SELECT count(*) FROM recorded) AS recorded,
           CASE WHEN NOT EXISTS (SELECT 1 FROM inserted) THEN EXISTS (
               SELECT 1 FROM appointments a
               WHERE a.status = 'held' AND a.blocking AND a.held_until <= $6
               AND a.responder_id = $3 AND a.start_at < $5 AND a.block_end > $4) END AS lapsed"""

_raw_contexts: dict[str, asyncpg.Record] = {}


async def _raw_book(connection: asyncpg.Connection, responder: str, start: datetime) -> bool:
    """One booking on the raw pool: the remembered context (read on first use), then the
    one-statement write. (The benchmark has no holds, so no lapsed hold is ever in the way.)"""
    context = _raw_contexts.get(responder)
    if context is None:
        context = await connection.fetchrow(_RAW_CONTEXT, responder, SITE)
        assert context is not None
        _raw_contexts[responder] = context
    now = datetime.now(UTC)
    appointment_id = uuid.uuid4()
    written = await connection.fetchrow(
        _RAW_BOOK,
        appointment_id,
        SITE,
        responder,
        start,
        start + SLOT,
        now,
        uuid.uuid4(),
        context["responder_row"],
        context["schedule_row"],
        context["site_row"],
        b"\x0a\x24" + str(appointment_id).encode(),
    )
    assert written is not None
    assert written["fresh"], "the raw context went stale"
    return bool(written["recorded"])


async def _throughput_raw(
    pool: asyncpg.Pool, slots: Iterator[tuple[str, datetime]], total: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    work = iter([next(slots) for _ in range(total)])

    async def worker() -> None:
        for responder, start in work:
            began = time.perf_counter()
            async with pool.acquire() as connection:
                await _raw_book(connection, responder, start)
            latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - began), latencies


async def _race_raw(
    pool: asyncpg.Pool, slots: Iterator[tuple[str, datetime]], clients: int, rounds: int
) -> tuple[int, list[float]]:
    good, durations = 0, []
    for _ in range(rounds):
        responder, start = next(slots)

        async def one(responder: str = responder, start: datetime = start) -> bool:
            async with pool.acquire() as connection:
                return await _raw_book(connection, responder, start)

        began = time.perf_counter()
        wins = await asyncio.gather(*(one() for _ in range(clients)))
        durations.append((time.perf_counter() - began) * 1000)
        good += sum(wins) == 1
    return good, durations


async def _floor_cpu_ms(client: KeepAliveClient, pid: int, total: int, concurrency: int) -> float:
    """Service CPU per `GET /healthz` at the same concurrency: what uvicorn, the chassis's
    middlewares and FastAPI's routing cost before any booking work (no token, no body, no
    database) — the floor under the service CPU per booking."""
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            await client.get("/healthz")

    before = _service_cpu(pid)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return 1000 * _total(_since(before, _service_cpu(pid))) / total


def _service_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds so far of the service process `pid` and of each process
    below it (Linux /proc), by process id: with uvicorn workers, the master and its workers
    (each worker's `/metrics` would tell only its own CPU, and a request reaches one of
    them). The multiprocessing resource tracker, if any, is counted too: it is the
    service's, and idle."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[int, float] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[current] = (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return seconds


def _since(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    return {pid: spent - before.get(pid, 0.0) for pid, spent in after.items()}


def _total(spent: dict[int, float]) -> float:
    return sum(spent.values())


def _worker_shares(spent: dict[int, float], master: int, workers: int) -> list[float]:
    """The share of the workers' CPU each of the `workers` busiest processes below the
    master took, busiest first (the resource tracker, idle, falls outside the top W)."""
    below = sorted((v for pid, v in spent.items() if pid != master), reverse=True)[:workers]
    if workers == 1 or not below:
        return [1.0]
    total = sum(below)
    return [v / total for v in below] if total > 0 else [0.0] * len(below)


async def _overlaps(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            """SELECT count(*) FROM appointments a JOIN appointments b
               ON a.id < b.id AND a.blocking AND b.blocking AND a.responder_id = b.responder_id
               AND tstzrange(a.start_at, a.block_end) && tstzrange(b.start_at, b.block_end)"""
        )
    )


def _postgres_cpu(postmaster: int | None) -> float:
    """CPU seconds so far of the embedded PostgreSQL (postmaster and backends); NaN when the
    database is an external one."""
    return float("nan") if postmaster is None else _total(_service_cpu(postmaster))


async def _measure(
    settings: BookingSettings,
    base_url: str,
    pids: tuple[int, int | None],
    token: str,
    knobs: dict[str, int],
) -> tuple[Results, bool]:
    results = Results("booking", parameters=dict(knobs))
    clients, rounds = knobs["race_clients"], knobs["race_rounds"]
    total, concurrency = knobs["bookings"], knobs["concurrency"]
    workers = knobs["workers"]
    pid, postmaster = pids
    half = RESPONDERS // 2
    http_slots = _slots(range(half), 1, 28)
    raw_slots = _slots(range(half, RESPONDERS), 1, 28)
    headers = {"Authorization": f"Bearer {token}"}
    pool = await asyncpg.create_pool(
        _dsn(settings),
        min_size=POOL_SIZE,
        max_size=POOL_SIZE * 2,
        server_settings={"search_path": f"{settings.owned_schema},public"},
    )
    try:
        async with KeepAliveClient(base_url, headers=headers) as client:
            await _throughput_http(client, http_slots, 200, concurrency)  # warm up
            await _throughput_raw(pool, raw_slots, 200, concurrency)
            print(f"  hot-slot race: {rounds} rounds x {clients} clients…", flush=True)
            race_cpu = _service_cpu(pid)
            good, durations = await _race_http(client, http_slots, clients, rounds)
            race_shares = _worker_shares(_since(race_cpu, _service_cpu(pid)), pid, workers)
            raw_good, raw_durations = await _race_raw(pool, raw_slots, clients, rounds)
            print(f"  throughput: {total} bookings, {concurrency} clients…", flush=True)
            cpu_before = _service_cpu(pid)
            pg_cpu = _postgres_cpu(postmaster)
            client_cpu = time.process_time()
            rate, latencies, failures = await _throughput_http(
                client, http_slots, total, concurrency
            )
            client_cpu = time.process_time() - client_cpu
            pg_cpu = _postgres_cpu(postmaster) - pg_cpu
            spent = _since(cpu_before, _service_cpu(pid))
            service_cpu = _total(spent)
            shares = _worker_shares(spent, pid, workers)
            raw_cpu, raw_pg_cpu = time.process_time(), _postgres_cpu(postmaster)
            raw_rate, raw_latencies = await _throughput_raw(pool, raw_slots, total, concurrency)
            raw_cpu = time.process_time() - raw_cpu
            raw_pg_cpu = _postgres_cpu(postmaster) - raw_pg_cpu
            floor_ms = await _floor_cpu_ms(client, pid, total, concurrency)
        overlaps = await _overlaps(pool)
    finally:
        await pool.close()
    results.add(
        Figure(
            f"race rounds with exactly one 201 ({clients} clients)",
            good,
            "rounds",
            "raw asyncpg rounds with one winner",
            raw_good,
            f"= {rounds}",
        )
    )
    results.add(Figure("overlapping blocking rows (SQL)", overlaps, "rows", "expected", 0, "= 0"))
    # The race is between processes only if its requests reached every worker.
    results.add(
        Figure(
            f"race: least busy of {workers} worker(s), share of the workers' CPU",
            100 * race_shares[-1],
            "%",
            "even spread",
            100 / workers,
            "> 0 (every worker took part)",
        )
    )
    results.add(
        Figure("race round p50", _p(durations, 0.5), "ms", "raw asyncpg", _p(raw_durations, 0.5))
    )
    results.add(
        Figure(
            f"confirmed bookings/s ({concurrency} clients, HTTP)",
            rate,
            "/s",
            "raw asyncpg same transaction",
            raw_rate,
            ">= 1000/s",
        )
    )
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        results.add(
            Figure(
                f"booking latency {name}",
                _p(latencies, q),
                "ms",
                f"raw asyncpg {name}",
                _p(raw_latencies, q),
                "p99 < 100 ms" if name == "p99" else "",
            )
        )
    # CPU per booking is what a loaded machine distorts least (rates and latencies move with
    # the other processes sharing the cores).
    results.add(
        Figure(
            f"service CPU per booking (HTTP, {workers} worker(s) + master)",
            1000 * service_cpu / total,
            "ms",
            "raw asyncpg client CPU",
            1000 * raw_cpu / total,
        )
    )
    results.add(
        Figure(
            "service CPU per GET /healthz (chassis floor)",
            floor_ms,
            "ms",
            "service CPU per booking",
            1000 * service_cpu / total,
        )
    )
    # The load generator shares the cores: what it burns is not available to the service.
    results.add(
        Figure(
            "HTTP client (load generator) CPU per booking",
            1000 * client_cpu / total,
            "ms",
            "raw asyncpg client CPU",
            1000 * raw_cpu / total,
        )
    )
    results.add(
        Figure(
            f"throughput: busiest of {workers} worker(s), share of the workers' CPU",
            100 * shares[0],
            "%",
            "even spread",
            100 / workers,
        )
    )
    # PostgreSQL runs on the same cores: service + database + load generator CPU per booking
    # is what a booking costs the machine, and the cores divided by it the rate this machine
    # could reach with nothing else running (the raw figure: client + database only).
    results.add(
        Figure(
            "PostgreSQL CPU per booking (HTTP; incl. the relay's outbox work)",
            1000 * pg_cpu / total,
            "ms",
            "PostgreSQL CPU per raw booking",
            1000 * raw_pg_cpu / total,
        )
    )
    cores = os.cpu_count() or 1
    results.add(
        Figure(
            f"CPU-bound ceiling on {cores} cores (cores / all CPU per booking)",
            cores * total / (service_cpu + pg_cpu + client_cpu),
            "/s",
            "raw asyncpg same formula",
            cores * total / (raw_cpu + raw_pg_cpu),
        )
    )
    results.add(Figure("failed bookings (non-201)", failures, "", "expected", 0, "= 0"))
    return results, good == rounds and overlaps == 0 and failures == 0


if __name__ == "__main__":
    sys.exit(run())
