"""Statistics benchmark: observatory query latency over bulk-loaded projections and rebuild
throughput from the topics, each beside a raw baseline measured in the same run.

- Queries: N sessions (plus appointments, consultations, expertises, sites) are COPY-loaded
  into the projections; every indicator and the observatory summary run through the service's
  own use cases (SQLAlchemy, asyncpg) R times; the baseline runs the very statements they sent
  (captured on the engine) on a raw asyncpg connection.
- Rebuild: E events (session lifecycle, appointments, heartbeats) are produced to the real
  topics, then `maillage_statistics.rebuild` replays them into a fresh schema; the baseline is
  a raw aiokafka reader draining the same partitions without touching the database.

The machine's load average (1 min) is recorded before and after the queries: latencies on a
shared machine are only comparable at a similar load, and the raw baseline, measured in the
same run, is the reference.

Knobs (environment): STATISTICS_BENCH_SESSIONS (default 100000; 1000000 for the issue's
target: seeding it takes ~4 minutes on the 2-core machine, so it is not the default),
STATISTICS_BENCH_REPEATS (30), STATISTICS_BENCH_EVENTS (1000000, the target: producing them
to the embedded broker, draining and rebuilding take ~3 minutes).

The issue's scale, queries and rebuild:
    STATISTICS_BENCH_SESSIONS=1000000 STATISTICS_BENCH_REPEATS=15 maillage bench statistics

Seeding COPYs with the rollup triggers deferred (`statistics.defer_rollups`) and then computes
every rollup once (`statistics_refresh_rollups()`), as the rebuild does.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import event

from maillage_devstack.bench import Figure, Results, benchmark
from maillage_devstack.infra import provide_infrastructure

SCHEMA = "statistics_bench"
DEPARTEMENTS = ["08", "10", "51", "52", "54", "55", "57", "67", "68", "88"]
CATEGORIES = ["medico_social", "ehpad", "msp", "paramedical", "pharmacie", "centre_de_sante"]
SPECIALTIES = ["SM54", "SM15", "SM42", "SM04", "SM32", "SM22"]
SINCE = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Knobs:
    sessions: int
    repeats: int
    events: int

    @classmethod
    def from_environment(cls) -> Knobs:
        env = os.environ
        return cls(
            sessions=int(env.get("STATISTICS_BENCH_SESSIONS", "100000")),
            repeats=int(env.get("STATISTICS_BENCH_REPEATS", "30")),
            events=int(env.get("STATISTICS_BENCH_EVENTS", "1000000")),
        )


def _pg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) > 1 else samples[0]


# ---------------------------------------------------------------------------------------------
# Bulk load
# ---------------------------------------------------------------------------------------------


async def bulk_load(database_url: str, sessions: int) -> None:
    """COPY a realistic network: 800 sites, `sessions` sessions over 24 months, and more."""
    rng = random.Random(42)  # noqa: S311 - reproducible synthetic data
    sites: list[tuple[Any, ...]] = [
        (
            str(uuid.uuid4()), 1, f"site {i}", rng.choice(CATEGORIES),
            rng.choice(["hotspot_dedie", "site_classique", "hotspot_mutualise"]),
            f"{i:05d}", DEPARTEMENTS[i % len(DEPARTEMENTS)], rng.random() < 0.6,
            rng.random() < 0.4, rng.random() < 0.95, [], SINCE,
        )
        for i in range(800)
    ]  # fmt: skip
    responders = [str(uuid.uuid4()) for _ in range(300)]
    session_rows, appointment_rows = [], []
    for n in range(sessions):
        site = sites[int(rng.paretovariate(1.2)) % len(sites)]
        start = SINCE + timedelta(minutes=rng.randrange(0, 730 * 24 * 60))
        on_demand = rng.random() < 0.2
        assisted = rng.random() < 0.85
        ended = rng.random() < 0.93
        appointment = str(uuid.uuid4())
        context = (
            site[0], rng.choice(responders), rng.choice(SPECIALTIES), "teleconsultation", site[6],
        )  # fmt: skip
        session_rows.append(
            (
                str(uuid.uuid4()), *context, start,
                "on_demand" if on_demand else "scheduled", "assisted" if assisted else "simple",
                appointment, "", start, start, start + timedelta(minutes=15) if ended else None,
                900 if ended else None, 30, None,
                None if ended else start + timedelta(minutes=2), "" if ended else "network",
            )
        )  # fmt: skip
        if n % 2 == 0:
            cancelled = rng.random() < 0.08
            appointment_rows.append(
                (
                    appointment, *context, start, "scheduled", "assisted", start, None,
                    start - timedelta(days=2), start - timedelta(days=1) if cancelled else None,
                    None if cancelled else start, None, "",
                )
            )  # fmt: skip
    expertises = [
        (
            str(uuid.uuid4()), site[0], rng.choice(responders), rng.choice(SPECIALTIES),
            "teleexpertise", site[6], start, start, 86400.0, None,
            start + timedelta(hours=20), 72000.0, None, start + timedelta(hours=20), "answered",
        )
        for site, start in (
            (rng.choice(sites), SINCE + timedelta(hours=rng.randrange(0, 730 * 24)))
            for _ in range(sessions // 10)
        )
    ]  # fmt: skip
    consultations = [
        (
            str(uuid.uuid4()), site[0], rng.choice(responders), "SM54", "teleconsultation",
            site[6], start, "simple", start, start + timedelta(seconds=wait), float(wait), None, 1,
        )
        for site, start, wait in (
            (rng.choice(sites), SINCE + timedelta(hours=rng.randrange(0, 730 * 24)),
             rng.randrange(10, 600))
            for _ in range(sessions // 5)
        )
    ]  # fmt: skip
    connection = await asyncpg.connect(
        _pg_url(database_url), server_settings={"search_path": SCHEMA}
    )
    try:
        # As the rebuild does: rollup triggers deferred, then every rollup computed in one pass.
        await connection.execute("SET statistics.defer_rollups = 'on'")
        for table, rows in (
            ("site", sites),
            ("session", session_rows),
            ("appointment", appointment_rows),
            ("expertise", expertises),
            ("consultation", consultations),
        ):
            await connection.copy_records_to_table(table, records=rows, schema_name=SCHEMA)
        bases = ("site", "session", "appointment", "expertise", "consultation")
        for table in bases:
            await connection.execute(f"VACUUM ANALYZE {SCHEMA}.{table}")
        await connection.execute("SELECT statistics_refresh_rollups()")
        for table in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", SCHEMA
        ):
            if table["tablename"] not in bases:
                await connection.execute(f"VACUUM ANALYZE {SCHEMA}.{table['tablename']}")
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# Queries: the service's use cases beside raw asyncpg running the same statements
# ---------------------------------------------------------------------------------------------


async def query_latencies(settings: Any, database_url: str, repeats: int) -> dict[str, Any]:
    from maillage_common.db.engine import create_engine, create_session_factory
    from maillage_common.db.unit_of_work import UnitOfWork
    from maillage_statistics.domain.rules import Filters
    from maillage_statistics.use_cases.indicators import (
        INDICATORS,
        IndicatorParameters,
        compute_indicator,
        observatory_summary,
    )

    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    filters = Filters(
        since=datetime(2025, 6, 1, tzinfo=UTC), until=datetime(2026, 6, 1, tzinfo=UTC)
    )
    scoped = Filters(since=filters.since, until=filters.until, departement="10",
                     site_category="ehpad")  # fmt: skip
    parameters = IndicatorParameters(now=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "observatory (region, 12 months)": lambda: observatory_summary(
            UnitOfWork(sessions), filters, parameters
        ),
        "observatory (département 10, ehpad)": lambda: observatory_summary(
            UnitOfWork(sessions), scoped, parameters
        ),
    }
    for name in ("teleconsultations", "teleconsultations-monthly", "usage-status",
                 "specialties", "quality", "site-act-types"):  # fmt: skip
        cases[f"indicator {name}"] = lambda name=name: compute_indicator(  # type: ignore[misc]
            UnitOfWork(sessions), name, filters, parameters
        )
    assert set(INDICATORS) >= {"quality"}
    # With the service's own session settings (custom plans): otherwise the baseline pays for
    # the generic plans PostgreSQL picks after five executions, and flatters the service.
    raw = await asyncpg.connect(
        _pg_url(database_url),
        server_settings={**settings.database_session_settings, "search_path": SCHEMA},
    )
    results: dict[str, Any] = {"load_average_before": round(os.getloadavg()[0], 2)}
    try:
        for name, run in cases.items():
            captured.clear()
            await run()  # warm up, and capture the statements this query sends
            statements = [
                (s, p) for s, p in captured if s.lstrip().upper().startswith(("SELECT", "WITH"))
            ]
            service = []
            for _ in range(repeats):
                started = time.perf_counter()
                await run()
                service.append(time.perf_counter() - started)
            baseline = []
            for _ in range(repeats):
                started = time.perf_counter()
                for statement, params in statements:
                    await raw.fetch(statement, *(params or ()))
                baseline.append(time.perf_counter() - started)
            results[name] = {
                "service_p95_ms": round(_p95(service) * 1000, 2),
                "raw_asyncpg_p95_ms": round(_p95(baseline) * 1000, 2),
                "statements": len(statements),
            }
    finally:
        await raw.close()
        await engine.dispose()
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    return results


# ---------------------------------------------------------------------------------------------
# Rebuild: the rebuild command beside a raw aiokafka drain of the same partitions
# ---------------------------------------------------------------------------------------------


def _events(count: int) -> Iterator[tuple[str, str, Any]]:
    """`count` events, made as they are sent (a million protobuf messages would not fit
    comfortably in memory at once)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from maillage.booking.v1 import events_pb2 as booking
    from maillage.common.v1 import types_pb2 as common
    from maillage.session_signalling.v1 import events_pb2 as sessions
    from maillage.telemetry.v1 import events_pb2 as telemetry

    def ts(instant: datetime) -> Timestamp:
        stamp = Timestamp()
        stamp.FromDatetime(instant)
        return stamp

    rng = random.Random(7)  # noqa: S311 - reproducible synthetic data
    made = 0
    while made < count:
        session, appointment = str(uuid.uuid4()), str(uuid.uuid4())
        start = SINCE + timedelta(minutes=rng.randrange(0, 700_000))
        ctx: dict[str, Any] = {
            "site_id": f"site-{rng.randrange(800)}", "responder_id": f"r-{rng.randrange(300)}",
            "specialty_code": rng.choice(SPECIALTIES), "act": common.ACT_TELECONSULTATION,
            "departement": rng.choice(DEPARTEMENTS), "mode": common.CONSULTATION_MODE_SCHEDULED,
            "assistance": common.ASSISTANCE_ASSISTED,
        }  # fmt: skip
        s_ctx: dict[str, Any] = {"session_id": session, "appointment_id": appointment, **ctx}
        a_ctx: dict[str, Any] = {"appointment_id": appointment, **ctx, "start": ts(start)}
        group: list[tuple[str, str, Any]] = [
            (appointment, "", booking.AppointmentBooked(**a_ctx, booked_at=ts(start))),
            (session, "", sessions.SessionScheduled(**s_ctx, scheduled_start=ts(start))),
            (session, "", sessions.SessionStarted(**s_ctx, started_at=ts(start))),
            (session, "", sessions.SessionEnded(**s_ctx, started_at=ts(start),
                                                ended_at=ts(start), live_seconds=900)),
            (appointment, "", booking.AppointmentFulfilled(**a_ctx, recorded_at=ts(start))),
            (ctx["site_id"], "", telemetry.KioskHeartbeatReceived(
                kiosk_id=f"k-{rng.randrange(500)}", site_id=ctx["site_id"],
                departement=ctx["departement"], received_at=ts(start))),
        ]  # fmt: skip
        yield from group[: count - made]
        made += len(group)


async def produce(bootstrap: str, count: int) -> None:
    from maillage_common.bus.topics import TopicSpec, ensure_topics
    from maillage_common.events.catalogue import topic_of
    from maillage_common.events.envelope import encode_headers
    from maillage_statistics.handlers import consumers

    await ensure_topics(bootstrap, [TopicSpec(t, 6) for t in consumers()[0].topics])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=1_000_000)  # fmt: skip
    await producer.start()
    try:
        now = datetime.now(UTC)
        pending = []
        for key, _, message in _events(count):
            headers = encode_headers(
                event_id=uuid.uuid4(), event_type=message.DESCRIPTOR.full_name,
                source="maillage/bench", subject=key, time=now, traceparent=None,
            )  # fmt: skip
            pending.append(
                await producer.send(topic_of(type(message)), key=key.encode(),
                                    value=message.SerializeToString(), headers=headers)
            )  # fmt: skip
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def raw_drain(bootstrap: str) -> tuple[int, float]:
    """Records and records/s for a raw aiokafka reader of every statistics topic."""
    from maillage_statistics.handlers import consumers

    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                              enable_auto_commit=False)  # fmt: skip
    await reader.start()
    try:
        existing = await reader.topics()
        partitions = [
            TopicPartition(t, p) for t in consumers()[0].topics if t in existing
            for p in sorted(reader.partitions_for_topic(t) or ())
        ]  # fmt: skip
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        end = {tp: o for tp, o in (await reader.end_offsets(partitions)).items() if o}
        count, started = 0, time.perf_counter()
        while any([await reader.position(tp) < o for tp, o in end.items()]):
            batches = await reader.getmany(timeout_ms=500, max_records=2000)
            count += sum(len(b) for b in batches.values())
        return count, count / (time.perf_counter() - started)
    finally:
        await reader.stop()


# ---------------------------------------------------------------------------------------------


async def _run(database_url: str, bootstrap: str, knobs: Knobs, keys: Path) -> dict[str, Any]:
    from maillage_common.auth.keys import ensure_dev_signing_key
    from maillage_common.db.migrations import upgrade
    from maillage_statistics.db.migrate import MIGRATIONS
    from maillage_statistics.rebuild import rebuild
    from maillage_statistics.settings import StatisticsSettings

    key = ensure_dev_signing_key(keys)
    settings = StatisticsSettings(
        DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        AUTH_JWKS_URL=key.jwks_url, AUTH_ISSUER="maillage-bench", database_schema=SCHEMA,
        database_statement_timeout_seconds=120.0,
    )  # fmt: skip
    await asyncio.to_thread(upgrade, settings, MIGRATIONS)
    started = time.perf_counter()
    await bulk_load(database_url, knobs.sessions)
    load_seconds = time.perf_counter() - started
    queries = await query_latencies(settings, database_url, knobs.repeats)

    await produce(bootstrap, knobs.events)
    raw_count, raw_rate = await raw_drain(bootstrap)
    report = await rebuild(
        settings, schema=f"{SCHEMA}_rebuild", consumer=f"bench-{uuid.uuid4().hex[:6]}"
    )
    return {
        "sessions": knobs.sessions,
        "bulk_load_seconds": round(load_seconds, 1),
        "queries": queries,
        "rebuild": {
            "records": report.records,
            "applied": report.applied,
            "workers": report.workers,
            "events_per_second": round(report.events_per_second),
            "raw_aiokafka_drain_records": raw_count,
            "phases_seconds": {k: round(v, 2) for k, v in report.phases.items()},
            "raw_aiokafka_drain_per_second": round(raw_rate),
        },
    }


def _print(result: dict[str, Any]) -> None:
    print(f"statistics: {result['sessions']:,} sessions bulk-loaded in "
          f"{result['bulk_load_seconds']} s")  # fmt: skip
    queries = dict(result["queries"])
    load = (queries.pop("load_average_before", None), queries.pop("load_average_after", None))
    print(f"load average (1 min) before/after the queries: {load[0]} / {load[1]}")
    print(f"{'query':45} {'service p95 ms':>15} {'raw asyncpg p95 ms':>19} {'stmts':>6}")
    for name, row in queries.items():
        print(f"{name:45} {row['service_p95_ms']:>15} {row['raw_asyncpg_p95_ms']:>19} "
              f"{row['statements']:>6}")  # fmt: skip
    rebuild = result["rebuild"]
    raw = rebuild["raw_aiokafka_drain_per_second"]
    print(f"rebuild: {rebuild['records']:,} events by {rebuild['workers']} workers at "
          f"{rebuild['events_per_second']:,} events/s "
          f"(raw aiokafka drain, no database: {raw:,}/s); phases (s): "
          f"{rebuild['phases_seconds']}")  # fmt: skip


@benchmark("statistics")
def run_statistics_benchmark() -> int | None:
    """Observatory query p95 over bulk-loaded sessions; rebuild events/s; raw baselines."""
    knobs = Knobs.from_environment()
    with (
        tempfile.TemporaryDirectory(prefix="maillage-bench-stats-") as root,
        provide_infrastructure(Path(root), durable=False) as infra,
    ):
        database_url = infra.ensure_database("maillage_bench_statistics")
        result = asyncio.run(
            _run(database_url, infra.kafka_bootstrap_servers, knobs, Path(root) / "keys")
        )
    _print(result)
    _results(result, knobs).write()
    return None


def _results(result: dict[str, Any], knobs: Knobs) -> Results:
    """The run as the bench report's figures, each beside its same-run raw baseline."""
    results = Results(
        "statistics",
        parameters={
            "sessions": knobs.sessions,
            "repeats": knobs.repeats,
            "events": knobs.events,
            "load_average_before_queries": result["queries"].get("load_average_before"),
            "load_average_after_queries": result["queries"].get("load_average_after"),
        },
    )
    for name, row in result["queries"].items():
        if isinstance(row, dict):
            target = "< 50 ms at 1,000,000 sessions" if name.startswith("observatory") else ""
            results.add(
                Figure(f"{name} p95", row["service_p95_ms"], "ms", "raw asyncpg",
                       row["raw_asyncpg_p95_ms"], target)
            )  # fmt: skip
    rebuild = result["rebuild"]
    results.add(
        Figure(f"rebuild ({rebuild['workers']} worker processes, then the rollup refresh)",
               rebuild["events_per_second"], "events/s", "raw aiokafka drain",
               rebuild["raw_aiokafka_drain_per_second"], ">= 10,000 events/s")
    )  # fmt: skip
    return results
