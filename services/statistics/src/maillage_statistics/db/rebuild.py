"""Bulk claims and folds for the rebuild (batches instead of one transaction per record)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from maillage_common.db.engine import driver_connection
from maillage_statistics.db.tables import PROJECTIONS, ROLLUPS


async def truncate_projections(session: AsyncSession, consumer: str) -> None:
    """Empty every projection and rollup and forget `consumer`'s claims (a rebuild in place)."""
    # TRUNCATE fires no row or statement triggers: the rollups are emptied with their bases.
    names = ", ".join(table.name for table in (*PROJECTIONS, *ROLLUPS))
    await session.execute(text(f"TRUNCATE {names}"))
    await session.execute(text("DELETE FROM inbox_event WHERE consumer = :c"), {"c": consumer})


_CLAIMS_STAGE = "inbox_event_stage"
_CLAIM_COLUMNS = ("consumer", "event_id", "event_type")
_CREATE_CLAIMS_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS inbox_event_stage (LIKE inbox_event INCLUDING DEFAULTS)"
)
_CLAIM_STAGED = """WITH staged AS (DELETE FROM inbox_event_stage
                                   RETURNING consumer, event_id, event_type)
    INSERT INTO inbox_event (consumer, event_id, event_type)
    SELECT consumer, event_id, event_type FROM staged ORDER BY event_id
    ON CONFLICT DO NOTHING"""


async def copy_claims(
    session: AsyncSession, consumer: str, events: Sequence[tuple[uuid.UUID, str]]
) -> None:
    """Inbox rows for a batch's events, by one COPY (the rebuild dedupes them in memory).

    An event another worker already claimed (a duplicate published under another key) is
    skipped, not an error: folding it twice would change nothing."""
    if not events:
        return
    driver = await driver_connection(session)
    await driver.execute(_CREATE_CLAIMS_STAGE)
    await driver.copy_records_to_table(
        _CLAIMS_STAGE,
        columns=_CLAIM_COLUMNS,
        records=[(consumer, event_id, kind) for event_id, kind in events],
    )
    await driver.execute(_CLAIM_STAGED)


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
