# ruff: noqa: S608 - SQL is assembled from constants and column names; values are bound.
"""The upserts that fold events into the projections, written so order does not matter.

Each column has a merge rule: `latest` (context: the value of the event with the latest
event time wins), `first` (a fact's instant: the earliest report wins, NULL never
overwrites), `max` (a value only one event sets), or the whole row is a versioned snapshot
(`version` strictly greater wins). Applying the same events in any order, any number of
times, gives the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Table, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_common.db.engine import driver_connection
from maillage_statistics.db import tables

Merge = Literal["latest", "first", "max", "keep"]


@dataclass(frozen=True, slots=True)
class Write:
    """One row to fold into the projection `table` (every column of it given in `row`)."""

    table: str
    row: Mapping[str, Any]


def _merge_expression(table: str, column: str, merge: Merge) -> str:
    current, incoming = f"{table}.{column}", f"excluded.{column}"
    if merge == "first":
        return f"LEAST({current}, {incoming})"
    if merge == "max":
        return f"GREATEST({current}, {incoming})"
    if merge == "keep":
        return current
    newer = f"{table}.context_at IS NULL OR excluded.context_at >= {table}.context_at"
    return f"CASE WHEN {newer} THEN {incoming} ELSE {current} END"


def _fact_conflict(table: Table, merges: Mapping[str, Merge]) -> str:
    key = next(iter(table.primary_key.columns)).name
    assignments = [
        f"{name} = {_merge_expression(table.name, name, merges.get(name, 'latest'))}"
        for name in (column.name for column in table.columns)
        if name not in (key, "context_at")
    ]
    assignments.append(f"context_at = GREATEST({table.name}.context_at, excluded.context_at)")
    return f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(assignments)}"


def _newer_conflict(table: Table, newer: str) -> str:
    key = next(iter(table.primary_key.columns)).name
    assignments = [f"{c.name} = excluded.{c.name}" for c in table.columns if c.name != key]
    return f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(assignments)} WHERE {newer}"


def _values_insert(table: Table, conflict: str) -> TextClause:
    names = [column.name for column in table.columns]
    return text(
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join(':' + name for name in names)}) {conflict}"
    )


@dataclass(frozen=True, slots=True)
class StagedUpsert:
    """Many rows in one COPY into a temporary twin of the table, then one INSERT … SELECT
    that empties it. COPY encodes each value once by its column's type; the unnest arrays it
    replaces cost asyncpg a type check per element (a third of the rebuild's Python time)."""

    stage: str
    columns: tuple[str, ...]
    create: str
    insert: str

    async def write(
        self, driver: Any, records: list[tuple[Any, ...]], columns: Sequence[str] = ()
    ) -> None:
        """Upsert `records` (of `columns`, by default all; the others take their default) on
        the asyncpg connection `driver`, in its current transaction."""
        await driver.execute(self.create)
        await driver.copy_records_to_table(
            self.stage, records=records, columns=columns or self.columns
        )
        await driver.execute(self.insert)


def staged_upsert(table: Table, conflict: str) -> StagedUpsert:
    stage = f"{table.name}_stage"
    key = ", ".join(column.name for column in table.primary_key.columns)
    columns = tuple(column.name for column in table.columns)
    names = ", ".join(columns)
    return StagedUpsert(
        stage,
        columns,
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {table.name} INCLUDING DEFAULTS)",
        # In key order: concurrent rebuild workers lock shared rows in one order (no deadlock).
        f"""WITH staged AS (DELETE FROM {stage} RETURNING {names})
            INSERT INTO {table.name} ({names}) SELECT {names} FROM staged ORDER BY {key}
            {conflict}""",
    )


def _firsts(*names: str) -> dict[str, Merge]:
    return dict.fromkeys(names, "first")


def _maxes(*names: str) -> dict[str, Merge]:
    return dict.fromkeys(names, "max")


@dataclass(frozen=True, slots=True)
class Projection:
    """How rows of one projection merge: by facts, by snapshot version, or inserted once."""

    table: Table
    kind: Literal["facts", "newer", "once"]
    merges: Mapping[str, Merge] = field(default_factory=dict)
    newer_by: str = ""

    key: str = ""

    rules: Mapping[str, Merge] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # Computed once: the fold calls `merge` per row of a million-event rebuild.
        key = next(iter(self.table.primary_key.columns)).name
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "rules", {**self.merges, "context_at": "max", key: "keep"})

    @property
    def conflict(self) -> str:
        if self.kind == "facts":
            return _fact_conflict(self.table, self.merges)
        if self.kind == "newer":
            column = self.newer_by
            return _newer_conflict(self.table, f"excluded.{column} > {self.table.name}.{column}")
        return "ON CONFLICT DO NOTHING"

    def upsert(self) -> TextClause:
        return _values_insert(self.table, self.conflict)

    def staged_upsert(self) -> StagedUpsert:
        return staged_upsert(self.table, self.conflict)

    def merge(self, current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
        """The same rule as `upsert()`, in memory (to fold a batch before sending it)."""
        if self.kind == "once":
            return current
        if self.kind == "newer":
            return incoming if _gt(incoming[self.newer_by], current[self.newer_by]) else current
        current_at, incoming_at = current["context_at"], incoming["context_at"]
        newer = current_at is None or (incoming_at is not None and incoming_at >= current_at)
        merged = current.copy()
        rules = self.rules
        for name, value in incoming.items():
            held = current[name]
            if value == held:
                continue
            rule = rules.get(name, "latest")
            if rule == "latest":
                if newer:
                    merged[name] = value
            # LEAST / GREATEST in PostgreSQL ignore NULLs: a NULL never wins.
            elif rule == "keep" or value is None:
                continue
            elif held is None or (value < held if rule == "first" else value > held):
                merged[name] = value
        return merged


def _gt(a: Any, b: Any) -> bool:
    return b is None or (a is not None and a > b)


PROJECTIONS: dict[str, Projection] = {
    "site": Projection(tables.site, "newer", newer_by="version"),
    "professional": Projection(tables.professional, "newer", newer_by="version"),
    "kiosk": Projection(tables.kiosk, "newer", newer_by="version"),
    "appointment": Projection(
        tables.appointment,
        "facts",
        {
            **_firsts("held_at", "booked_at", "cancelled_at", "fulfilled_at", "no_show_at"),
            **_maxes("session_id"),
        },
    ),
    "consultation": Projection(
        tables.consultation,
        "facts",
        {
            **_firsts("requested_at", "accepted_at", "expired_at"),
            # Only the acceptance names the responder and the delay: never overwritten by ''.
            **_maxes("responder_id", "time_to_accept_seconds", "offers_made"),
        },
    ),
    "expertise": Projection(
        tables.expertise,
        "facts",
        {
            **_firsts("requested_at", "accepted_at", "answered_at", "rejected_at", "closed_at"),
            **_maxes("requested_delay_seconds", "response_seconds", "outcome"),
        },
    ),
    "session": Projection(
        tables.session,
        "facts",
        {
            **_firsts("started_at", "ended_at", "no_show_at", "failed_at"),
            **_maxes("live_seconds", "waiting_seconds", "failure_reason"),
        },
    ),
    "quality_sample": Projection(tables.quality_sample, "once"),
    "measurement": Projection(tables.measurement, "once"),
    "kiosk_health": Projection(tables.kiosk_health, "newer", newer_by="last_seen_at"),
    "alert": Projection(
        tables.alert,
        "facts",
        {
            **_firsts("raised_at", "cleared_at"),
            **_maxes("kind", "severity", "kiosk_id", "site_id", "departement"),
        },
    ),
}

UPSERTS: dict[str, TextClause] = {name: p.upsert() for name, p in PROJECTIONS.items()}
STAGED_UPSERTS: dict[str, StagedUpsert] = {
    name: p.staged_upsert() for name, p in PROJECTIONS.items()
}


def _defaults(table: Table) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for column in table.columns:
        default = column.server_default
        fallback: Any = None
        if default is not None and not column.nullable:
            fallback = 0 if str(getattr(default, "arg", "")) == "0" else ""
        defaults[column.name] = fallback
    return defaults


_DEFAULTS = {name: _defaults(projection.table) for name, projection in PROJECTIONS.items()}


def complete(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with every column of `table` present (absent ones NULL or their default)."""
    return {**_DEFAULTS[table], **row}


async def apply_writes(session: AsyncSession, writes: Iterable[Write]) -> None:
    """Fold writes one by one (the live consumer: a handful per event)."""
    for write in writes:
        await session.execute(UPSERTS[write.table], complete(write.table, write.row))


def fold(writes: Sequence[Write]) -> dict[str, list[dict[str, Any]]]:
    """Merge the writes of a batch per row key, with the same rules as the upserts.

    The merge rules are commutative and associative, so folding in memory first and then
    upserting once per key gives the same rows as upserting every write (fewer statements).
    """
    folded: dict[str, dict[Any, dict[str, Any]]] = {}
    for write in writes:
        projection = PROJECTIONS[write.table]
        row = complete(write.table, write.row)
        rows = folded.setdefault(write.table, {})
        key = row[projection.key]
        rows[key] = projection.merge(rows[key], row) if key in rows else row
    return {table: list(rows.values()) for table, rows in folded.items()}


async def apply_batch(session: AsyncSession, writes: Sequence[Write]) -> None:
    """Fold many writes, then one COPY and one upsert per projection (the rebuild)."""
    driver = await driver_connection(session)
    folded = fold(writes)
    # Tables in one fixed order too (see `staged_upsert`).
    for table in (name for name in PROJECTIONS if name in folded):
        staged = STAGED_UPSERTS[table]
        # Keys are unique after the fold, as one multi-row ON CONFLICT requires.
        rows = [tuple(row[name] for name in staged.columns) for row in folded[table]]
        await staged.write(driver, rows)
