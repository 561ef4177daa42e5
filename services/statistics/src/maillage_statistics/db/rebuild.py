"""Bulk claims and folds for the rebuild (batches instead of one transaction per record)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maillage_common.db.engine import driver_connection
from maillage_common.db.messaging import INBOX
from maillage_statistics.db.projections import staged_upsert
from maillage_statistics.db.tables import PROJECTIONS, ROLLUPS


async def truncate_projections(session: AsyncSession, consumer: str) -> None:
    """Empty every projection and rollup and forget `consumer`'s claims (a rebuild in place)."""
    # TRUNCATE fires no row or statement triggers: the rollups are emptied with their bases.
    names = ", ".join(table.name for table in (*PROJECTIONS, *ROLLUPS))
    await session.execute(text(f"TRUNCATE {names}"))
    await session.execute(text("DELETE FROM inbox_event WHERE consumer = :c"), {"c": consumer})


# Claims a worker could share with another (a ce_id seen under two keys) are skipped.
_CLAIMS = staged_upsert(INBOX, "ON CONFLICT DO NOTHING")
_CLAIM_COLUMNS = ("consumer", "event_id", "event_type")


async def copy_claims(
    session: AsyncSession, consumer: str, events: Sequence[tuple[uuid.UUID, str]]
) -> None:
    """Inbox rows for a batch's events, by one COPY (the rebuild dedupes them in memory).

    An event another worker already claimed (a duplicate published under another key) is
    skipped, not an error: folding it twice would change nothing."""
    if events:
        records = [(consumer, event_id, kind) for event_id, kind in events]
        await _CLAIMS.write(await driver_connection(session), records, _CLAIM_COLUMNS)


async def defer_rollups(session: AsyncSession) -> None:
    """This transaction's writes leave the rollups alone (`refresh_rollups` catches up).

    Its commit does not wait for the WAL to reach the disk either: a rebuild that stops
    midway starts again from empty tables, so a batch lost in a crash costs nothing.
    """
    await session.execute(text("SET LOCAL statistics.defer_rollups = 'on'"))
    await session.execute(text("SET LOCAL synchronous_commit = 'off'"))


async def refresh_rollups(sessions: async_sessionmaker[AsyncSession], *, work_mem: str) -> None:
    """Recompute every rollup from the base rows, once (after deferred writes).

    The manual teleconsultations first (they are session rows), then the month and the day
    rollups side by side, each in its own transaction on its own connection (migration 0008):
    PostgreSQL computes them on two cores. Their aggregates group millions of rows: with the
    default 4 MB of `work_mem` the hash tables spill to disk; two connections, once per
    rebuild, can afford more."""
    async with sessions.begin() as session:
        await session.execute(text("SELECT statistics_refresh_manual_teleconsultations()"))

    async def lane(grain: str) -> None:
        async with sessions.begin() as session:
            await session.execute(
                text("SELECT set_config('work_mem', :value, true)"), {"value": work_mem}
            )
            await session.execute(text(f"SELECT statistics_refresh_{grain}_rollups()"))

    async with asyncio.TaskGroup() as lanes:
        for grain in ("month", "day"):
            lanes.create_task(lane(grain))
