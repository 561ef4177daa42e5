"""Data access for booking's tables.

Repositories never commit: the use case owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_booking.db.tables import (
    appointments,
    expertises,
    idempotency_keys,
    kiosks,
    responders,
    schedules,
    sites,
)

EXCLUSION_VIOLATION = "23P01"
RETRYABLE = frozenset({"40P01", "40001"})


def sqlstate(error: DBAPIError) -> str | None:
    """The PostgreSQL error code behind a driver error (asyncpg keeps it on the cause)."""
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None


# --- directory read model -------------------------------------------------------------------


async def upsert_versioned(
    session: AsyncSession, table: Any, values: dict[str, Any], insert_only: Sequence[str] = ()
) -> bool:
    """Apply a full snapshot only if its version is newer than the stored one (order-tolerant)."""
    base = pg_insert(table).values(**values)
    columns = {k: base.excluded[k] for k in values if k != "id" and k not in insert_only}
    statement = base.on_conflict_do_update(
        index_elements=[table.c.id],
        set_=columns,
        where=table.c.version < base.excluded.version,
    ).returning(table.c.id)
    return (await session.execute(statement)).first() is not None


async def responder(session: AsyncSession, responder_id: str) -> Row[Any] | None:
    return (
        await session.execute(select(responders).where(responders.c.id == responder_id))
    ).first()


async def responder_by_rpps(session: AsyncSession, rpps: str) -> Row[Any] | None:
    return (
        await session.execute(
            select(responders).where(responders.c.rpps == rpps).order_by(responders.c.active.desc())
        )
    ).first()


async def site(session: AsyncSession, site_id: str) -> Row[Any] | None:
    return (await session.execute(select(sites).where(sites.c.id == site_id))).first()


async def kiosk(session: AsyncSession, kiosk_id: str) -> Row[Any] | None:
    return (await session.execute(select(kiosks).where(kiosks.c.id == kiosk_id))).first()


async def set_on_duty(session: AsyncSession, responder_id: str, on_duty: bool) -> bool:
    done = await session.execute(
        update(responders)
        .where(responders.c.id == responder_id)
        .values(on_duty=on_duty)
        .returning(responders.c.id)
    )
    return done.first() is not None


_BOOKING_CONTEXT = text(
    """SELECT r.id AS responder_id, r.active AS responder_active, r.specialty_codes,
              s.time_zone, s.rules, st.departement, st.active AS site_active,
              st.name AS site_name, st.opening_hours::text AS opening_hours,
              k.site_id AS cabin_site_id, k.active AS cabin_active,
              (SELECT count(*) FROM (
                   SELECT pg_advisory_xact_lock(hashtextextended(u.key, 0))
                   FROM unnest(CAST(:lock_keys AS text[])) WITH ORDINALITY AS u(key, n)
                   ORDER BY u.n) AS queued) AS queued
       FROM (SELECT 1) AS one
       LEFT JOIN responders r ON r.id = :responder_id
       LEFT JOIN schedules s ON s.responder_id = :responder_id
       LEFT JOIN sites st ON st.id = :site_id
       LEFT JOIN kiosks k ON k.id = :resource_id"""
)


def lock_keys(responder_id: str, resource_id: str | None) -> list[str]:
    """The queueing locks of a booking, sorted so that two resources are always locked in
    the same order (see `queue_for_resources`)."""
    keys = {f"booking:{responder_id}"} | ({f"booking:{resource_id}"} if resource_id else set())
    return sorted(keys)


async def booking_context(
    session: AsyncSession, responder_id: str, site_id: str, resource_id: str | None
) -> Row[Any]:
    """Responder, schedule, site (with its opening hours) and cabin in one round trip (the
    transactional path of a booking), which also queues the booking behind others of the
    same responder/cabin (the advisory locks of `queue_for_resources`, held until the
    transaction ends)."""
    result = await session.execute(
        _BOOKING_CONTEXT,
        {
            "responder_id": responder_id,
            "site_id": site_id,
            "resource_id": resource_id,
            "lock_keys": lock_keys(responder_id, resource_id),
        },
    )
    row: Row[Any] = result.one()
    return row


# --- schedules -------------------------------------------------------------------------------


async def save_schedule(
    session: AsyncSession, responder_id: str, time_zone: str, rules: dict[str, Any], now: datetime
) -> None:
    statement = pg_insert(schedules).values(
        id=uuid.uuid4(), responder_id=responder_id, time_zone=time_zone, rules=rules, updated_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[schedules.c.responder_id],
            set_={"time_zone": time_zone, "rules": rules, "updated_at": now},
        )
    )


async def schedule_of(session: AsyncSession, responder_id: str) -> Row[Any] | None:
    return (
        await session.execute(select(schedules).where(schedules.c.responder_id == responder_id))
    ).first()


async def schedules_for_search(
    session: AsyncSession, specialty: str | None, act: int, departement: str | None
) -> list[Row[Any]]:
    query = (
        select(
            schedules,
            responders.c.specialty_codes,
            responders.c.departements,
            responders.c.latitudes,
            responders.c.longitudes,
        )
        .join(responders, responders.c.id == schedules.c.responder_id)
        .where(responders.c.active, responders.c.acts.contains([act]))
    )
    if specialty:
        query = query.where(responders.c.specialty_codes.contains([specialty]))
    if departement:
        query = query.where(responders.c.departements.contains([departement]))
    found: list[Row[Any]] = list((await session.execute(query)).all())
    return found


async def taken_ranges(
    session: AsyncSession, responder_ids: Sequence[str], frm: datetime, to: datetime, now: datetime
) -> list[Any]:
    """Blocking ranges of these responders in [frm, to); expired holds do not count."""
    query = select(
        appointments.c.responder_id, appointments.c.start_at, appointments.c.block_end
    ).where(
        appointments.c.responder_id.in_(responder_ids),
        appointments.c.blocking,
        or_(appointments.c.status != "held", appointments.c.held_until > now),
        appointments.c.start_at < to,
        appointments.c.block_end > frm,
    )
    rows: list[Any] = list((await session.execute(query)).all())
    return rows


_QUEUE = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")


async def queue_for_resources(session: AsyncSession, keys: Sequence[str]) -> None:
    """Make bookers of the same responder/cabin wait their turn (transaction advisory locks).

    Not the guarantee (the exclusion constraints are): concurrent inserts into a gist
    exclusion index can deadlock each other, and PostgreSQL takes `deadlock_timeout` (1 s)
    to notice; queueing first turns a burst on one slot into fast, orderly 409s.
    Sorted so that two resources are always locked in the same order.
    """
    for key in sorted(set(keys)):
        await session.execute(_QUEUE, {"k": f"booking:{key}"})


# --- appointments ----------------------------------------------------------------------------


async def release_expired_holds(
    session: AsyncSession,
    now: datetime,
    *,
    responder_id: str | None = None,
    resource_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[Row[Any]]:
    """Expired holds stop blocking (all of them, or those in the way of one new range)."""
    conditions = [
        appointments.c.status == "held",
        appointments.c.blocking,
        appointments.c.held_until <= now,
    ]
    if start is not None and end is not None:
        owners = [appointments.c.responder_id == responder_id]
        if resource_id is not None:
            owners.append(appointments.c.resource_id == resource_id)
        conditions += [
            or_(*owners),
            appointments.c.start_at < end,
            appointments.c.block_end > start,
        ]
    candidates = select(appointments.c.id).where(*conditions).with_for_update(skip_locked=True)
    if limit is not None:
        candidates = candidates.limit(limit)
    statement = (
        update(appointments)
        .where(appointments.c.id.in_(candidates.scalar_subquery()), *conditions)
        .values(status="expired", blocking=False, updated_at=now, cancel_reason=4)
        .returning(appointments)
    )
    rows: list[Row[Any]] = list((await session.execute(statement)).all())
    return rows


# Built once: constructing a statement per call (and its cache key) costs more Python time
# than the round trip it makes.
_INSERT_APPOINTMENT_IF_FREE = (
    pg_insert(appointments).on_conflict_do_nothing().returning(*appointments.c)
)


async def insert_appointment_if_free(
    session: AsyncSession, values: dict[str, Any]
) -> Row[Any] | None:
    """The new row, or None when an exclusion constraint refused it (ON CONFLICT DO NOTHING
    also arbitrates exclusion constraints): no error, so the transaction stays usable."""
    row: Row[Any] | None = (await session.execute(_INSERT_APPOINTMENT_IF_FREE, values)).first()
    return row


async def insert_appointment(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    statement = insert(appointments).values(**values).returning(appointments)
    row: Row[Any] = (await session.execute(statement)).one()
    return row


async def appointment(
    session: AsyncSession, appointment_id: uuid.UUID, *, for_update: bool = False
) -> Row[Any] | None:
    query = select(appointments).where(appointments.c.id == appointment_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def appointment_from_session(
    session: AsyncSession, appointment_id: str, consultation_id: str
) -> Row[Any] | None:
    if appointment_id:
        try:
            return await appointment(session, uuid.UUID(appointment_id), for_update=True)
        except ValueError:
            return None
    if consultation_id:
        query = (
            select(appointments)
            .where(appointments.c.consultation_id == consultation_id)
            .with_for_update()
        )
        return (await session.execute(query)).first()
    return None


async def update_appointment(
    session: AsyncSession, appointment_id: uuid.UUID, **values: Any
) -> Row[Any]:
    statement = (
        update(appointments)
        .where(appointments.c.id == appointment_id)
        .values(**values)
        .returning(appointments)
    )
    row: Row[Any] = (await session.execute(statement)).one()
    return row


async def responder_busy(
    session: AsyncSession, responder_ids: Sequence[str], start: datetime, end: datetime
) -> set[str]:
    """Responders holding a blocking appointment that overlaps [start, end)."""
    query = select(appointments.c.responder_id).where(
        appointments.c.responder_id.in_(responder_ids),
        appointments.c.blocking,
        appointments.c.status.in_(["booked", "held"]),
        appointments.c.start_at < end,
        appointments.c.block_end > start,
    )
    return set((await session.execute(query)).scalars())


async def overlapping_blocking_pairs(session: AsyncSession) -> int:
    """How many pairs of blocking rows overlap on one resource (must always be 0)."""
    result = await session.execute(
        text(
            """SELECT count(*) FROM appointments a JOIN appointments b
               ON a.id < b.id AND a.blocking AND b.blocking
               AND (a.responder_id = b.responder_id OR a.resource_id = b.resource_id)
               AND tstzrange(a.start_at, a.block_end) && tstzrange(b.start_at, b.block_end)"""
        )
    )
    return int(result.scalar_one())


# --- tele-expertise ---------------------------------------------------------------------------

_WAITING_EXPERTISE = ("requested", "accepted")


async def mark_overdue_expertises(
    session: AsyncSession, now: datetime, *, limit: int
) -> list[Row[Any]]:
    """Mark requests still waiting past their due time (each once: `overdue_at` was null)."""
    conditions = [
        expertises.c.overdue_at.is_(None),
        expertises.c.status.in_(_WAITING_EXPERTISE),
        expertises.c.due_at <= now,
    ]
    candidates = (
        select(expertises.c.id)
        .where(*conditions)
        .order_by(expertises.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(expertises)
        .where(expertises.c.id.in_(candidates.scalar_subquery()), *conditions)
        .values(overdue_at=now)
        .returning(expertises)
    )
    return list((await session.execute(statement)).all())


# --- idempotency -----------------------------------------------------------------------------


async def claim_idempotency_key(
    session: AsyncSession, scope: str, key: str, now: datetime
) -> Row[Any] | None:
    """Claim the key for this transaction; if someone committed it first, return their row.

    ON CONFLICT waits for a concurrent claimer to finish, so the first result is what a
    retry sees; a claim rolled back with a failed request frees the key.
    """
    claimed = await session.execute(
        pg_insert(idempotency_keys)
        .values(scope=scope, key=key, status=0, body={}, created_at=now)
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    )
    if claimed.first() is not None:
        return None
    return (
        await session.execute(
            select(idempotency_keys).where(
                and_(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
            )
        )
    ).one()


async def store_idempotent_result(
    session: AsyncSession, scope: str, key: str, status: int, body: dict[str, Any]
) -> None:
    await session.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
        .values(status=status, body=body)
    )


def now_sql() -> Any:
    return func.now()
