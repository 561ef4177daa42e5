"""Bulk claims and folds for the rebuild (batches instead of one transaction per record)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_common.db.engine import driver_connection
from maillage_statistics.db.tables import PROJECTIONS, ROLLUPS


async def truncate_projections(session: AsyncSession, consumer: str) -> None:
    """Empty every projection and rollup and forget `consumer`'s claims (a rebuild in place)."""
    # TRUNCATE fires no row or statement triggers: the rollups are emptied with their bases.
    names = ", ".join(table.name for table in (*PROJECTIONS, *ROLLUPS))
    await session.execute(text(f"TRUNCATE {names}"))
    await session.execute(text("DELETE FROM inbox_event WHERE consumer = :c"), {"c": consumer})


async def copy_claims(
    session: AsyncSession, schema: str, consumer: str, events: Sequence[tuple[uuid.UUID, str]]
) -> None:
    """COPY inbox rows for events known to be new (the rebuild dedupes them in memory)."""
    if not events:
        return
    driver = await driver_connection(session)
    await driver.copy_records_to_table(
        "inbox_event",
        schema_name=schema,
        columns=["consumer", "event_id", "event_type"],
        records=[(consumer, event_id, kind) for event_id, kind in events],
    )


async def defer_rollups(session: AsyncSession) -> None:
    """This transaction's writes leave the rollups alone (`refresh_rollups` catches up).

    Its commit does not wait for the WAL to reach the disk either: a rebuild that stops
    midway starts again from empty tables, so a batch lost in a crash costs nothing.
    """
    await session.execute(text("SET LOCAL statistics.defer_rollups = 'on'"))
    await session.execute(text("SET LOCAL synchronous_commit = 'off'"))


async def refresh_rollups(session: AsyncSession, *, work_mem: str) -> None:
    """Recompute every rollup from the base rows, once (after deferred writes).

    Its aggregates group millions of rows: with the default 4 MB of `work_mem` the hash
    tables spill to disk. One connection, once per rebuild, can afford more."""
    await session.execute(text("SELECT set_config('work_mem', :value, true)"), {"value": work_mem})
    await session.execute(text("SELECT statistics_refresh_rollups()"))
