"""Rebuild the projections from the beginning of every topic into fresh tables.

    python -m maillage_statistics.rebuild [--schema NAME] [--consumer NAME] [--in-place]

Reads every partition of every consumed topic from its first offset up to the end offsets
seen at start (a consistent cut), with no committed consumer-group offsets (a fresh reader),
and folds the events through the SAME projector functions as the live consumer. Records are
handled in batches: one transaction claims a batch's ce_ids in the inbox (duplicates and
replays have no second effect) and folds it with one COPY and one upsert per projection,
while the next batch is read and decoded.
Idempotency by ce_id: the target starts empty, ce_ids already folded are remembered in
memory and their inbox rows are COPYed (no per-row conflict check).
The live consumer commits one record per transaction, which is right for steady traffic but
far too slow for replaying millions of events; the folds are order-independent, so batching
changes nothing in the result.

Cut-over: run the service with `STATISTICS_DATABASE_SCHEMA=<the new schema>` and
`STATISTICS_CONSUMER_GROUP=<the --consumer name>`: the new group starts from the earliest
offsets and skips (inbox) everything the rebuild already folded.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from maillage_common.db.engine import create_engine, create_session_factory
from maillage_common.db.migrations import upgrade
from maillage_common.events.catalogue import EventCatalogue
from maillage_common.events.envelope import (
    Event,
    UndecodableEventError,
    decode_event,
    header_map,
)
from maillage_statistics.db.migrate import MIGRATIONS
from maillage_statistics.db.projections import apply_batch
from maillage_statistics.db.rebuild import (
    copy_claims,
    defer_rollups,
    refresh_rollups,
    truncate_projections,
)
from maillage_statistics.handlers import consumers
from maillage_statistics.handlers.projection import PROJECTORS_BY_TYPE
from maillage_statistics.settings import StatisticsSettings

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild read and folded, and how fast."""

    schema: str
    records: int
    applied: int
    duplicates: int
    skipped: int
    phases: dict[str, float]
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


async def rebuild(
    settings: StatisticsSettings,
    *,
    schema: str,
    consumer: str,
    in_place: bool = False,
    batch_size: int | None = None,
) -> RebuildReport:
    """Replay every topic into `schema` (created and migrated if needed, then emptied)."""
    if schema == settings.owned_schema and not in_place:
        raise ValueError(f"{schema} is the live schema: pass in_place to rebuild it")
    target = settings.model_copy(update={"database_schema": schema})
    await asyncio.to_thread(upgrade, target, MIGRATIONS)
    engine = create_engine(target)
    sessions = create_session_factory(engine)
    try:
        # Always into empty tables: the claims below are COPYed, deduplicated in memory.
        async with sessions.begin() as session:
            await truncate_projections(session, consumer)
        started = time.perf_counter()
        counts = await _replay(
            target, sessions, consumer, batch_size or settings.rebuild_batch_size
        )
        return RebuildReport(schema, *counts, seconds=time.perf_counter() - started)
    finally:
        await engine.dispose()


async def _replay(
    settings: StatisticsSettings, sessions: Any, consumer_name: str, batch_size: int
) -> tuple[int, int, int, int, dict[str, float]]:
    topics = consumers()[0].topics
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.kafka_max_message_bytes * 2,
    )
    await reader.start()
    catalogue = EventCatalogue.load()
    records = applied = duplicates = skipped = 0
    clock = time.perf_counter
    # Busy time per stage: reading and decoding overlap the database's folding of the
    # previous batch (PostgreSQL works on one core while Python decodes on the other).
    phases = {"broker": 0.0, "decode": 0.0, "database": 0.0, "rollups": 0.0}
    positions: dict[TopicPartition, int] = {}
    # ce_ids folded so far (as ints: ~80 bytes each, 80 MB per million events).
    seen: set[int] = set()
    # Two decoded batches at most wait for the database: memory stays bounded.
    decoded: asyncio.Queue[tuple[list[tuple[Any, str]], list[Any]] | None] = asyncio.Queue(2)

    async def read_and_decode() -> None:
        nonlocal records, applied, duplicates, skipped
        end = await _assign_all(reader, topics)
        idle = False
        while await _behind(reader, end, positions, refresh=idle):
            mark = clock()
            batches = await reader.getmany(timeout_ms=500, max_records=batch_size)
            phases["broker"] += clock() - mark
            batch = [record for part in batches.values() for record in part]
            idle = not batch
            for partition, part in batches.items():
                positions[partition] = part[-1].offset + 1
            if not batch:
                continue
            records += len(batch)
            mark = clock()
            # In a worker thread: the event loop stays free to send the previous batch's
            # statements as their answers arrive, instead of after a whole batch's decoding.
            events = await asyncio.to_thread(_decode, batch, catalogue)
            skipped += len(batch) - len(events)
            fresh: list[Event[Any]] = []
            for event in events:
                if event.id.int in seen:
                    duplicates += 1
                else:
                    seen.add(event.id.int)
                    fresh.append(event)
            applied += len(fresh)
            writes = await asyncio.to_thread(_project, fresh)
            phases["decode"] += clock() - mark
            await decoded.put(([(event.id, event.type) for event in fresh], writes))
        await decoded.put(None)

    async def fold() -> None:
        while (work := await decoded.get()) is not None:
            claims, writes = work
            mark = clock()
            async with sessions.begin() as session:
                # Rollups are recomputed once at the end, not per batch (see below).
                await defer_rollups(session)
                await copy_claims(session, settings.owned_schema, consumer_name, claims)
                await apply_batch(session, writes)
            phases["database"] += clock() - mark

    try:
        # A failure on either side cancels the other: nothing is half-reported.
        async with asyncio.TaskGroup() as stages:
            stages.create_task(read_and_decode())
            stages.create_task(fold())
    finally:
        await reader.stop()
    # Recomputing the touched cells per batch would re-read each (site, month) once per batch
    # touching it (quadratic over a long history); one pass over the base rows instead.
    mark = clock()
    async with sessions.begin() as session:
        await refresh_rollups(session, work_mem=settings.rebuild_work_mem)
    phases["rollups"] = clock() - mark
    return records, applied, duplicates, skipped, phases


async def _assign_all(reader: AIOKafkaConsumer, topics: Sequence[str]) -> dict[TopicPartition, int]:
    existing = await reader.topics()
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        if topic in existing
        for partition in sorted(reader.partitions_for_topic(topic) or ())
    ]
    reader.assign(partitions)
    await reader.seek_to_beginning(*partitions)
    end: dict[TopicPartition, int] = await reader.end_offsets(partitions)
    return {partition: offset for partition, offset in end.items() if offset > 0}


async def _behind(
    reader: AIOKafkaConsumer,
    end: dict[TopicPartition, int],
    positions: dict[TopicPartition, int],
    *,
    refresh: bool,
) -> bool:
    lagging = [tp for tp, offset in end.items() if positions.get(tp, 0) < offset]
    if refresh:
        # Gaps (compaction, control records) leave no record at the end: ask the reader.
        for partition in lagging:
            positions[partition] = await reader.position(partition)
        lagging = [tp for tp in lagging if positions[tp] < end[tp]]
    return bool(lagging)


def _decode(
    batch: Sequence[ConsumerRecord[Any, Any]], catalogue: EventCatalogue
) -> list[Event[Any]]:
    events = []
    for record in batch:
        try:
            event = decode_event(header_map(record.headers), record.value, catalogue)
        except UndecodableEventError:
            continue  # the live consumer dead-lettered it; a replay skips it the same way
        if event.type in PROJECTORS_BY_TYPE:
            events.append(event)
    return events


def _project(events: Sequence[Event[Any]]) -> list[Any]:
    return [write for event in events for write in PROJECTORS_BY_TYPE[event.type](event)]


def main(argv: Sequence[str] | None = None) -> None:
    settings = StatisticsSettings.from_environment()
    parser = argparse.ArgumentParser(prog="python -m maillage_statistics.rebuild")
    parser.add_argument("--schema", default=f"{settings.owned_schema}_rebuild")
    parser.add_argument("--consumer", default=f"{settings.consumer_group}-rebuild")
    parser.add_argument(
        "--in-place", action="store_true", help="allow rebuilding the live schema itself"
    )
    parser.add_argument("--batch-size", type=int, default=settings.rebuild_batch_size)
    args = parser.parse_args(argv)
    report = asyncio.run(
        rebuild(
            settings,
            schema=args.schema,
            consumer=args.consumer,
            in_place=args.in_place,
            batch_size=args.batch_size,
        )
    )
    print(
        f"rebuilt {report.schema}: {report.records} records, {report.applied} applied, "
        f"{report.duplicates} duplicates, {report.skipped} skipped in {report.seconds:.1f} s "
        f"({report.events_per_second:,.0f} events/s)"
    )


if __name__ == "__main__":
    main()
