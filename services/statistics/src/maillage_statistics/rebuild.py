"""Rebuild the projections from the beginning of every topic into fresh tables.

    python -m maillage_statistics.rebuild [--schema NAME] [--consumer NAME] [--in-place]
                                          [--batch-size N] [--workers N]

Reads every partition of every consumed topic from its first offset up to the end offsets
seen at start (a consistent cut), with no committed consumer-group offsets (a fresh reader),
and folds the events through the SAME projector functions as the live consumer. Records are
handled in batches: one transaction claims a batch's ce_ids in the inbox (duplicates and
replays have no second effect) and folds it with one COPY and one upsert per projection,
while the next batch is read and decoded.
The partitions are dealt to `--workers` processes (each partition to one, balanced by record
count), which fold side by side: decoding and projecting are Python work that one process
cannot spread over two cores. Their batches lock projection rows in one global order (table,
then key), so two workers touching the same row wait for each other and never deadlock.
Idempotency by ce_id: the target starts empty and each worker remembers the ce_ids it folded
(a duplicate has the key, hence the partition, of its original); a claim already in the inbox
is skipped, and folding an event twice changes no projection row anyway.
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
import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, cast

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
    workers: int
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
    workers: int | None = None,
) -> RebuildReport:
    """Replay every topic into `schema` (created and migrated if needed, then emptied)."""
    if schema == settings.owned_schema and not in_place:
        raise ValueError(f"{schema} is the live schema: pass in_place to rebuild it")
    if (batch_size is not None and batch_size < 1) or (workers is not None and workers < 1):
        raise ValueError("batch_size and workers must be at least 1")
    target = settings.model_copy(update={"database_schema": schema})
    await asyncio.to_thread(upgrade, target, MIGRATIONS)
    engine = create_engine(target)
    sessions = create_session_factory(engine)
    try:
        # Always into empty tables: the result is the topics' fold, nothing left from before.
        async with sessions.begin() as session:
            await truncate_projections(session, consumer)
        started = time.perf_counter()
        cut = await _cut(target)
        shares = [
            _Share(target, consumer, batch_size or settings.rebuild_batch_size, partitions)
            for partitions in _balanced(cut, workers or settings.rebuild_workers)
        ]
        counts = await _fold_shares(shares)
        # Recomputing the touched cells per batch would re-read each (site, month) once per
        # batch touching it (quadratic over a long history); one pass over the base rows.
        mark = time.perf_counter()
        await refresh_rollups(sessions, work_mem=settings.rebuild_work_mem)
        counts.phases["rollups"] = time.perf_counter() - mark
        return RebuildReport(
            schema,
            len(shares),
            counts.records,
            counts.applied,
            counts.duplicates,
            counts.skipped,
            counts.phases,
            seconds=time.perf_counter() - started,
        )
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class _Share:
    """One worker's part of the replay: its partitions and the offset to read each up to."""

    settings: StatisticsSettings
    consumer: str
    batch_size: int
    end: dict[TopicPartition, int]


@dataclass(slots=True)
class _Counts:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    # Busy time per stage, summed over the workers.
    phases: dict[str, float] = field(
        default_factory=lambda: {"broker": 0.0, "decode": 0.0, "database": 0.0}
    )

    def add(self, other: _Counts) -> None:
        self.records += other.records
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.skipped += other.skipped
        for stage, seconds in other.phases.items():
            self.phases[stage] = self.phases.get(stage, 0.0) + seconds


async def _cut(settings: StatisticsSettings) -> dict[TopicPartition, tuple[int, int]]:
    """Every partition holding records, with its first offset and its end offset now."""
    topics = consumers()[0].topics
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    await reader.start()
    try:
        existing = await reader.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            if topic in existing
            for partition in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        first = await reader.beginning_offsets(partitions)
        end = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
    return {tp: (first[tp], end[tp]) for tp in partitions if end[tp] > first[tp]}


def _balanced(
    cut: dict[TopicPartition, tuple[int, int]], workers: int
) -> list[dict[TopicPartition, int]]:
    """The partitions dealt to at most `workers` shares, largest first to the lightest share.

    A partition is read by one worker only: its events stay in order and a duplicate (same
    key, same partition) is recognised by the worker that already folded it.
    """
    loads = [0] * workers
    shares: list[dict[TopicPartition, int]] = [{} for _ in range(workers)]
    for partition, (first, end) in sorted(
        cut.items(), key=lambda item: item[1][1] - item[1][0], reverse=True
    ):
        lightest = loads.index(min(loads))
        shares[lightest][partition] = end
        loads[lightest] += end - first
    return [share for share in shares if share]


async def _fold_shares(shares: Sequence[_Share]) -> _Counts:
    total = _Counts()
    if len(shares) == 1:
        total.add(await _fold_share(shares[0]))
    elif shares:
        # Decoding and folding are Python work, bound to one core by the GIL: each share gets
        # its own process (and database connection), PostgreSQL and the broker the rest.
        for counts in await asyncio.to_thread(_run_in_processes, _fold_share_in_process, shares):
            total.add(counts)
    return total


class RebuildWorkerError(RuntimeError):
    """A rebuild worker process failed or died; the others were stopped."""


def _run_in_processes(target: Callable[[Any, Connection], None], jobs: Sequence[Any]) -> list[Any]:
    """`target(job, answer)` for each job in its own process; their answers, in job order.

    The first failure, or a worker that dies without answering (killed, out of memory),
    terminates the others and raises `RebuildWorkerError`: no worker is left running, and the
    caller is never left waiting for an answer that cannot come (a `multiprocessing.Pool`
    waits forever for the task of a worker killed under it).
    """
    # spawn, not fork: the parent runs an event loop and threads that a fork would copy.
    context = multiprocessing.get_context("spawn")
    pending: dict[Connection, tuple[int, BaseProcess]] = {}
    started: list[tuple[BaseProcess, Connection]] = []
    answers: dict[int, Any] = {}
    try:
        for index, job in enumerate(jobs):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=target, args=(job, sender), daemon=True)
            process.start()
            sender.close()  # the child holds the only writer: its death reads as EOF here
            pending[receiver] = (index, process)
            started.append((process, receiver))
        while pending:
            for ready in wait(list(pending)):
                receiver = cast(Connection, ready)
                index, finished = pending.pop(receiver)
                try:
                    answer = receiver.recv()
                except EOFError:
                    finished.join()
                    raise RebuildWorkerError(
                        f"rebuild worker {index} died (exit code {finished.exitcode})"
                    ) from None
                if isinstance(answer, _WorkerFailure):
                    raise RebuildWorkerError(f"rebuild worker {index} failed:\n{answer.trace}")
                answers[index] = answer
        return [answers[index] for index in range(len(jobs))]
    finally:
        for worker, receiver in started:
            if worker.is_alive():
                worker.terminate()  # its open transaction rolls back; a rebuild starts empty
            worker.join()
            receiver.close()


@dataclass(frozen=True, slots=True)
class _WorkerFailure:
    # The traceback as text: a driver's exception may not survive pickling.
    trace: str


def _fold_share_in_process(share: _Share, answer: Connection) -> None:
    try:
        answer.send(asyncio.run(_fold_share(share)))
    except Exception:  # reported to the parent, which raises it
        answer.send(_WorkerFailure(traceback.format_exc()))
    finally:
        answer.close()


async def _fold_share(share: _Share) -> _Counts:
    reader = AIOKafkaConsumer(
        bootstrap_servers=share.settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=share.settings.kafka_max_message_bytes * 2,
    )
    await reader.start()
    engine = create_engine(share.settings)
    try:
        reader.assign(list(share.end))
        await reader.seek_to_beginning(*share.end)
        counts = await _replay(share, create_session_factory(engine), reader)
    finally:
        await reader.stop()
        await engine.dispose()
    _log.info("rebuild_share_folded", partitions=len(share.end), records=counts.records)
    return counts


async def _replay(share: _Share, sessions: Any, reader: AIOKafkaConsumer) -> _Counts:
    catalogue = EventCatalogue.load()
    counts = _Counts()
    phases = counts.phases
    clock = time.perf_counter
    positions: dict[TopicPartition, int] = {}
    # ce_ids folded so far (as ints: ~80 bytes each, 80 MB per million events).
    seen: set[int] = set()
    # Two decoded batches at most wait for the database: memory stays bounded.
    decoded: asyncio.Queue[tuple[list[tuple[Any, str]], list[Any]] | None] = asyncio.Queue(2)

    async def read_and_decode() -> None:
        idle = False
        while await _behind(reader, share.end, positions, refresh=idle):
            mark = clock()
            batches = await reader.getmany(timeout_ms=500, max_records=share.batch_size)
            phases["broker"] += clock() - mark
            batch = [record for part in batches.values() for record in part]
            idle = not batch
            for partition, part in batches.items():
                positions[partition] = part[-1].offset + 1
            if not batch:
                continue
            counts.records += len(batch)
            mark = clock()
            # In a worker thread: the event loop stays free to send the previous batch's
            # statements as their answers arrive, instead of after a whole batch's decoding.
            events = await asyncio.to_thread(_decode, batch, catalogue)
            counts.skipped += len(batch) - len(events)
            fresh: list[Event[Any]] = []
            for event in events:
                if event.id.int in seen:
                    counts.duplicates += 1
                else:
                    seen.add(event.id.int)
                    fresh.append(event)
            counts.applied += len(fresh)
            writes = await asyncio.to_thread(_project, fresh)
            phases["decode"] += clock() - mark
            await decoded.put(([(event.id, event.type) for event in fresh], writes))
        await decoded.put(None)

    async def fold() -> None:
        while (work := await decoded.get()) is not None:
            claims, writes = work
            mark = clock()
            async with sessions.begin() as session:
                # Rollups are recomputed once at the end, not per batch (see `rebuild`).
                await defer_rollups(session)
                await copy_claims(session, share.consumer, claims)
                await apply_batch(session, writes)
            phases["database"] += clock() - mark

    # A failure on either side cancels the other: nothing is half-reported.
    async with asyncio.TaskGroup() as stages:
        stages.create_task(read_and_decode())
        stages.create_task(fold())
    return counts


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


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    settings = StatisticsSettings.from_environment()
    parser = argparse.ArgumentParser(prog="python -m maillage_statistics.rebuild")
    parser.add_argument("--schema", default=f"{settings.owned_schema}_rebuild")
    parser.add_argument("--consumer", default=f"{settings.consumer_group}-rebuild")
    parser.add_argument(
        "--in-place", action="store_true", help="allow rebuilding the live schema itself"
    )
    parser.add_argument("--batch-size", type=_at_least_one, default=settings.rebuild_batch_size)
    parser.add_argument("--workers", type=_at_least_one, default=settings.rebuild_workers)
    args = parser.parse_args(argv)
    report = asyncio.run(
        rebuild(
            settings,
            schema=args.schema,
            consumer=args.consumer,
            in_place=args.in_place,
            batch_size=args.batch_size,
            workers=args.workers,
        )
    )
    print(
        f"rebuilt {report.schema}: {report.records} records, {report.applied} applied, "
        f"{report.duplicates} duplicates, {report.skipped} skipped by {report.workers} workers "
        f"in {report.seconds:.1f} s "
        f"({report.events_per_second:,.0f} events/s)"
    )


if __name__ == "__main__":
    main()
