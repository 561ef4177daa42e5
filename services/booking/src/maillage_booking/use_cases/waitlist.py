"""Waitlist: a released slot is offered to the oldest site waiting for that responder, as a
hold it can confirm (AppointmentHeld), in the transaction that released it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from maillage.booking.v1 import events_pb2 as ev
from maillage_booking.db import repositories as repo
from maillage_booking.db.tables import waitlist
from maillage_booking.domain.errors import DomainError, NotFoundError
from maillage_booking.domain.schedule import require_aware
from maillage_booking.use_cases.common import appointment_context, ts, utcnow
from maillage_common.db.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class JoinWaitlist:
    responder_id: str
    site_id: str
    act: int
    patient_ref: str
    window_start: datetime
    window_end: datetime
    created_by: str


def waitlist_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "responder_id": row.responder_id,
        "site_id": row.site_id,
        "status": row.status,
        "window_start": row.window_start.isoformat(),
        "window_end": row.window_end.isoformat(),
        "appointment_id": str(row.appointment_id) if row.appointment_id else None,
    }


async def join_waitlist(uow: UnitOfWork, command: JoinWaitlist) -> dict[str, Any]:
    require_aware(command.window_start, "window_start")
    require_aware(command.window_end, "window_end")
    if command.window_end <= command.window_start:
        raise DomainError("window_end", "window_end must be after window_start")
    if command.window_end <= utcnow():
        raise DomainError("window_end", "the window is in the past")
    async with uow:
        responder = await repo.responder(uow.session, command.responder_id)
        if responder is None or not responder.active:
            raise DomainError("responder_id", "unknown or inactive responder")
        if await repo.site(uow.session, command.site_id) is None:
            raise DomainError("site_id", "unknown site")
        row = (
            await uow.session.execute(
                insert(waitlist)
                .values(
                    id=uuid.uuid4(),
                    responder_id=command.responder_id,
                    site_id=command.site_id,
                    act=command.act,
                    patient_ref=command.patient_ref,
                    window_start=command.window_start,
                    window_end=command.window_end,
                    status="waiting",
                    created_by=command.created_by,
                    created_at=utcnow(),
                )
                .returning(waitlist)
            )
        ).one()
        await uow.commit()
    return waitlist_view(row)


async def read_waitlist_entry(
    uow: UnitOfWork, entry_id: uuid.UUID, site_id: str | None
) -> dict[str, Any]:
    async with uow:
        row = (await uow.session.execute(select(waitlist).where(waitlist.c.id == entry_id))).first()
    if row is None or (site_id is not None and row.site_id != site_id):
        raise NotFoundError("waitlist_id", "no such waitlist entry")
    return waitlist_view(row)


async def offer_released_slot(
    uow: UnitOfWork, released: Row[Any], hold_ttl: timedelta
) -> Row[Any] | None:
    """Inside the releasing transaction: hold the freed time for the oldest matching entry."""
    now = utcnow()
    entry = (
        await uow.session.execute(
            select(waitlist)
            .where(
                waitlist.c.status == "waiting",
                waitlist.c.responder_id == released.responder_id,
                waitlist.c.act == released.act,
                waitlist.c.window_start <= released.start_at,
                waitlist.c.window_end >= released.end_at,
            )
            .order_by(waitlist.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if entry is None or released.start_at <= now:
        return None
    site = await repo.site(uow.session, entry.site_id)
    if site is None:
        return None
    try:
        # A savepoint: should the time still collide (a buffer), the cancellation stands.
        async with uow.session.begin_nested():
            held = await _hold_for(uow, entry, released, site.departement, now, hold_ttl)
    except IntegrityError:
        return None
    await uow.session.execute(
        update(waitlist)
        .where(waitlist.c.id == entry.id)
        .values(status="offered", appointment_id=held.id)
    )
    await uow.record(
        ev.AppointmentHeld(
            **appointment_context(held), held_at=ts(now), held_until=ts(held.held_until)
        ),
        subject=str(held.id),
    )
    return held


async def _hold_for(
    uow: UnitOfWork,
    entry: Row[Any],
    released: Row[Any],
    departement: str,
    now: datetime,
    hold_ttl: timedelta,
) -> Row[Any]:
    return await repo.insert_appointment(
        uow.session,
        {
            "id": uuid.uuid4(),
            "site_id": entry.site_id,
            "responder_id": released.responder_id,
            "resource_id": None,
            "specialty_code": released.specialty_code,
            "act": released.act,
            "departement": departement,
            "patient_ref": entry.patient_ref,
            "mode": released.mode,
            "assistance": released.assistance,
            "status": "held",
            "start_at": released.start_at,
            "end_at": released.end_at,
            "block_end": released.block_end,
            "held_until": now + hold_ttl,
            "blocking": True,
            "created_by": f"waitlist:{entry.id}",
            "created_at": now,
            "updated_at": now,
        },
    )
