"""The hot path of a booking without an Idempotency-Key or a cabin: one statement, no
BEGIN/COMMIT.

A single SQL statement is its own transaction, so the appointment row and its outbox row,
written by one statement (data-modifying CTEs), commit together or not at all: the outbox
guarantee holds without an explicit transaction. The read-model context (responder, schedule,
site) is read once and remembered by the caller; the write checks, in the same statement, that
the rows it was prepared from are unchanged (`xmin`), so a booking costs one round trip, two
when the context must be (re)read, instead of five (BEGIN, context, insert, outbox, COMMIT).
The exclusion constraints still decide every conflict; the queueing advisory lock is taken
inside the write statement, before its insert, and held until it commits. Statements run on
the asyncpg connection under a pooled SQLAlchemy connection (autocommit), their errors
translated to SQLAlchemy's.

Anything unusual (a refused insert with a lapsed hold in the way, a context that keeps
changing) is not decided here: the caller falls back to the transactional path of
`use_cases.appointments`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from maillage_common.db.unit_of_work import OutboxRow


class Statements:
    """Connections in autocommit mode from the service's own pool (no second pool): each
    statement run on them is a transaction of its own."""

    def __init__(
        self, engine: AsyncEngine, *, max_event_bytes: int, max_remembered: int = 10_000
    ) -> None:
        self._pool = engine.sync_engine.pool
        self.max_event_bytes = max_event_bytes
        self._max_remembered = max_remembered
        self._remembered: dict[Hashable, Any] = {}

    def recall(self, key: Hashable) -> Any:
        """A booking context remembered by `remember` (None if there is none). Only ever
        used to prepare a write that checks it is still current (`book_with_event`)."""
        return self._remembered.get(key)

    def remember(self, key: Hashable, value: Any) -> None:
        while len(self._remembered) >= self._max_remembered:
            del self._remembered[next(iter(self._remembered))]
        self._remembered[key] = value

    def forget(self, key: Hashable) -> None:
        self._remembered.pop(key, None)

    def connect(self) -> _Leased:
        """`async with statements.connect() as connection:` (returned to the pool on exit)."""
        return _Leased(self._pool)


class StatementConnection(Protocol):
    """What the statements need of a connection (`AsyncConnection` has it too)."""

    async def get_raw_connection(self) -> Any: ...

    async def invalidate(self, exception: BaseException | None = None) -> None: ...


class _Leased:
    """A connection checked out of the pool itself, not through a SQLAlchemy `Connection`:
    the statements run on its driver connection, never on SQLAlchemy's adapter, so no
    transaction is ever begun on it (each statement is its own, as in autocommit) and the
    engine-level connection (events, execution options, isolation level set and reset)
    would only cost CPU on every booking. Pool events and checkin (reset) still apply."""

    __slots__ = ("_pool", "_pooled")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._pooled: PoolProxiedConnection | None = None

    async def __aenter__(self) -> _Leased:
        self._pooled = await greenlet_spawn(self._pool.connect)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            await greenlet_spawn(pooled.close)

    async def get_raw_connection(self) -> PoolProxiedConnection:
        if self._pooled is None:
            raise RuntimeError("use the connection inside `async with`")
        return self._pooled

    async def invalidate(self, exception: BaseException | None = None) -> None:
        """Never handed out again: closed, and replaced by the pool (invalidating returns
        it to the pool: it is not closed a second time on exit)."""
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            await greenlet_spawn(pooled.invalidate, exception)


# The row versions (`xmin`: the transaction that wrote the row version read) let a later
# write check that what it was prepared from is still current, whoever changed it.
_CONTEXT = """
    SELECT r.id AS responder_id, r.active AS responder_active, r.specialty_codes,
           s.time_zone, s.rules::text AS rules, st.departement, st.active AS site_active,
           r.xmin::text AS responder_row, s.xmin::text AS schedule_row,
           st.xmin::text AS site_row
    FROM (SELECT 1) AS one
    LEFT JOIN responders r ON r.id = $1::text
    LEFT JOIN schedules s ON s.responder_id = $1::text
    LEFT JOIN sites st ON st.id = $2::text"""


@dataclass(frozen=True, slots=True)
class BookingContext:
    """What a booking without a cabin reads of the read model, with the row versions."""

    responder_id: str | None
    responder_active: bool | None
    specialty_codes: list[str] | None
    time_zone: str | None
    rules: dict[str, Any] | None
    departement: str | None
    site_active: bool | None
    responder_row: str | None
    schedule_row: str | None
    site_row: str | None
    cabin_site_id: None = None  # no cabin on this path
    cabin_active: None = None


async def booking_context(
    connection: StatementConnection, responder_id: str, site_id: str
) -> BookingContext:
    """Responder, schedule and site of a booking without a cabin, in one round trip (the
    read model is read as of this statement, as the transactional path reads it)."""
    row = await _fetchrow(connection, _CONTEXT, responder_id, site_id)
    assert row is not None  # one row always (outer joins)
    values = dict(row.items())
    if values["rules"] is not None:
        values["rules"] = json.loads(values["rules"])
    return BookingContext(**values)


# `current` is empty when the responder, their schedule or the site changed since the context
# the row was prepared from was read: then nothing is written and the caller prepares it
# again. The advisory lock is taken by `queued`, which the insert reads its row from: bookers
# of the same responder wait their turn before the exclusion index is touched (see
# `repositories.queue_for_resources`). The outbox row is inserted from the appointment the
# insert returned, so it exists exactly when the appointment does.
_BOOK = """
    WITH current AS (
        SELECT 1 FROM responders r
        JOIN schedules s ON s.responder_id = r.id
        JOIN sites st ON st.id = $2::text
        WHERE r.id = $3::text AND r.active AND st.active
        AND r.xmin::text = $16::text AND s.xmin::text = $17::text AND st.xmin::text = $18::text
    ), queued AS (
        SELECT count(*) AS n FROM (
            SELECT pg_advisory_xact_lock(hashtextextended('booking:' || $3::text, 0))
            FROM current) AS q
    ), inserted AS (
        INSERT INTO appointments (id, site_id, responder_id, resource_id, specialty_code, act,
            departement, patient_ref, mode, assistance, status, start_at, end_at, block_end,
            held_until, blocking, created_by, created_at, updated_at)
        SELECT $1::uuid, $2::text, $3::text, NULL, $4::text, $5::integer, $6::text, $7::text,
            $8::integer, $9::integer, $10::text, $11::timestamptz, $12::timestamptz,
            $13::timestamptz, $14::timestamptz, true, $15::text, $19::timestamptz,
            $19::timestamptz
        FROM queued, current
        ON CONFLICT DO NOTHING
        RETURNING id
    ), recorded AS (
        INSERT INTO outbox_event (event_id, topic, event_key, event_type, payload, traceparent)
        SELECT $20::uuid, $21::text, $22::text, $23::text, $24::bytea, $25::text
        FROM inserted
        RETURNING event_id
    )
    SELECT EXISTS (SELECT 1 FROM current) AS fresh,
           (SELECT count(*) FROM recorded) AS recorded,
           CASE WHEN NOT EXISTS (SELECT 1 FROM inserted) THEN EXISTS (
               SELECT 1 FROM appointments a
               WHERE a.status = 'held' AND a.blocking AND a.held_until <= $19::timestamptz
               AND a.responder_id = $3::text AND a.start_at < $13::timestamptz
               AND a.block_end > $11::timestamptz) END AS lapsed"""

# $1..$15, in this order; then $16-$18 the row versions, $19 now, $20-$25 the outbox row.
_BOOK_COLUMNS = (
    "id",
    "site_id",
    "responder_id",
    "specialty_code",
    "act",
    "departement",
    "patient_ref",
    "mode",
    "assistance",
    "status",
    "start_at",
    "end_at",
    "block_end",
    "held_until",
    "created_by",
)


class Written(enum.Enum):
    BOOKED = "booked"
    TAKEN = "taken"  # a live appointment of the responder refused the row
    LAPSED_IN_THE_WAY = "lapsed"  # refused, and a lapsed hold may be in the way
    STALE = "stale"  # nothing written: the context changed since it was read


async def book_with_event(
    connection: StatementConnection,
    values: dict[str, Any],
    event: OutboxRow,
    context: BookingContext,
) -> Written:
    """Insert the appointment (no cabin) and its outbox row in one statement, queued behind
    other bookers of the responder, provided `context` (from `booking_context`) is still
    current. Nothing is written unless both rows are."""
    row = await _fetchrow(
        connection,
        _BOOK,
        *(values[name] for name in _BOOK_COLUMNS),
        context.responder_row,
        context.schedule_row,
        context.site_row,
        values["created_at"],
        event.event_id,
        event.topic,
        event.event_key,
        event.event_type,
        event.payload,
        event.traceparent,
    )
    assert row is not None  # one row always
    fresh, recorded, lapsed = row["fresh"], row["recorded"], row["lapsed"]
    if not fresh:
        return Written.STALE
    if recorded:
        return Written.BOOKED
    return Written.LAPSED_IN_THE_WAY if lapsed else Written.TAKEN


# SQLSTATE classes that mean the database, not the statement, is the problem: answered 503
# like SQLAlchemy's OperationalError (connection exception, operator intervention,
# insufficient resources).
_UNAVAILABLE_CLASSES = ("08", "57", "53")


async def _fetchrow(connection: StatementConnection, sql: str, *args: Any) -> Any:
    """One statement on the driver connection under `connection` (SQLAlchemy's pool keeps
    owning it): SQLAlchemy's execution layer costs more CPU than the statement's round
    trip. Errors come out as SQLAlchemy's, so retries (`retry_on_conflict`, by SQLSTATE) and
    the chassis's 503 for an unavailable database work as on every other path; a broken
    connection is invalidated, and the pool replaces it."""
    pooled = await connection.get_raw_connection()
    driver: asyncpg.Connection = pooled.driver_connection
    try:
        return await driver.fetchrow(sql, *args)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
        code = str(getattr(error, "sqlstate", None) or "")
        if isinstance(error, asyncpg.PostgresError) and code[:2] not in _UNAVAILABLE_CLASSES:
            raise DBAPIError(sql, args, error) from error
        # The connection may be gone (or its server going): never hand it out again.
        await connection.invalidate(error)
        raise OperationalError(sql, args, error, connection_invalidated=True) from error
