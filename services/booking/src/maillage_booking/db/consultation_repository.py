"""Data access for on-demand consultations and their offers (never commits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_booking.db.tables import consultations, offers, responders


async def insert_consultation(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    statement = insert(consultations).values(**values).returning(consultations)
    row: Row[Any] = (await session.execute(statement)).one()
    return row


async def consultation(
    session: AsyncSession, consultation_id: uuid.UUID, *, for_update: bool = False
) -> Row[Any] | None:
    query = select(consultations).where(consultations.c.id == consultation_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def update_consultation(
    session: AsyncSession, consultation_id: uuid.UUID, **values: Any
) -> Row[Any]:
    statement = (
        update(consultations)
        .where(consultations.c.id == consultation_id)
        .values(**values)
        .returning(consultations)
    )
    row: Row[Any] = (await session.execute(statement)).one()
    return row


async def claim_open(
    session: AsyncSession, consultation_id: uuid.UUID, responder_id: str, now: datetime
) -> Row[Any] | None:
    """The first accept wins: only an open request offered to this responder flips."""
    offered = select(offers.c.responder_id).where(
        offers.c.consultation_id == consultation_id, offers.c.responder_id == responder_id
    )
    statement = (
        update(consultations)
        .where(
            consultations.c.id == consultation_id,
            consultations.c.status == "open",
            consultations.c.expires_at > now,
            offered.exists(),
        )
        .values(status="accepted", responder_id=responder_id, accepted_at=now)
        .returning(consultations)
    )
    row: Row[Any] | None = (await session.execute(statement)).first()
    return row


async def on_duty_candidates(
    session: AsyncSession, specialty: str, act: int, exclude: Sequence[str]
) -> list[Any]:
    query = select(responders.c.id, responders.c.departements, responders.c.last_offered_at).where(
        responders.c.active,
        responders.c.on_duty,
        responders.c.specialty_codes.contains([specialty]),
        responders.c.acts.contains([act]),
    )
    if exclude:
        query = query.where(responders.c.id.not_in(exclude))
    rows: list[Any] = list((await session.execute(query)).all())
    return rows


async def offered_to(session: AsyncSession, consultation_id: uuid.UUID) -> list[str]:
    query = select(offers.c.responder_id).where(offers.c.consultation_id == consultation_id)
    return [str(r) for r in (await session.execute(query)).scalars()]


async def add_offer(
    session: AsyncSession,
    consultation_id: uuid.UUID,
    responder_id: str,
    attempt: int,
    now: datetime,
    expires_at: datetime,
) -> None:
    await session.execute(
        insert(offers).values(
            consultation_id=consultation_id,
            responder_id=responder_id,
            attempt=attempt,
            offered_at=now,
            expires_at=expires_at,
        )
    )
    await session.execute(
        update(responders).where(responders.c.id == responder_id).values(last_offered_at=now)
    )


async def inbox(session: AsyncSession, responder_id: str, now: datetime) -> list[Any]:
    query = (
        select(consultations, offers.c.offered_at, offers.c.attempt)
        .join(offers, offers.c.consultation_id == consultations.c.id)
        .where(
            offers.c.responder_id == responder_id,
            consultations.c.status == "open",
            consultations.c.expires_at > now,
        )
        .order_by(offers.c.offered_at)
    )
    rows: list[Any] = list((await session.execute(query)).all())
    return rows


async def due(
    session: AsyncSession, now: datetime, *, expiring: bool, limit: int = 50
) -> list[Any]:
    """Open requests whose widening (or expiry) time has come, locked for this sweeper."""
    deadline = consultations.c.expires_at if expiring else consultations.c.widen_at
    query = (
        select(consultations)
        .where(consultations.c.status == "open", deadline <= now)
        .order_by(deadline)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if not expiring:
        query = query.where(consultations.c.tier == 1)
    rows: list[Any] = list((await session.execute(query)).all())
    return rows
