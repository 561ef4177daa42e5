"""Scheduled teleconsultation: hold -> confirm, or book directly; cancel; reschedule; outcome.

No double booking is guaranteed by PostgreSQL (exclusion constraints on the responder's and
the cabin's time ranges, over blocking rows only): these use cases never check availability
against other appointments themselves, they insert and map the violation to a conflict.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from google.protobuf.message import Message
from prometheus_client import Counter
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from maillage.booking.v1 import events_pb2 as ev
from maillage.common.v1 import types_pb2 as types
from maillage_booking.db import direct_booking as direct
from maillage_booking.db import repositories as repo
from maillage_booking.domain.errors import ConflictError, DomainError, NotFoundError
from maillage_booking.domain.opening_hours import (
    OpeningHours,
    UninterpretableHoursError,
    check_site_open,
    parse_opening_hours,
    parse_opening_hours_json,
)
from maillage_booking.domain.schedule import Schedule, check_bookable, schedule_from_document
from maillage_booking.use_cases.common import appointment_context, retry_on_conflict, ts, utcnow
from maillage_booking.use_cases.waitlist import offer_released_slot
from maillage_common.db.unit_of_work import UnitOfWork, outbox_row

APPOINTMENTS = Counter(
    "maillage_booking_appointments_total", "Appointment transitions", ["transition"]
)
BOOKING_CONFLICTS = Counter(
    "maillage_booking_conflicts_total", "Bookings refused because the time was taken"
)

ACTIVE = ("held", "booked")


@dataclass(frozen=True, slots=True)
class BookSlot:
    """Create an appointment: a hold (confirmed later) or a direct booking."""

    responder_id: str
    site_id: str
    act: int
    start: datetime
    end: datetime | None
    resource_id: str | None
    assistance: int
    specialty_code: str | None
    patient_ref: str
    hold: bool
    created_by: str
    idempotency_scope: str = ""
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: dict[str, Any]


def appointment_view(row: Any) -> dict[str, Any]:
    """The API's view of an appointment row (or of the values just written)."""
    return {
        "id": str(row.id),
        "status": row.status,
        "site_id": row.site_id,
        "responder_id": row.responder_id,
        "resource_id": row.resource_id,
        "specialty_code": row.specialty_code,
        "act": types.Act.Name(row.act).removeprefix("ACT_").lower(),
        "departement": row.departement,
        "patient_ref": row.patient_ref,
        "mode": types.ConsultationMode.Name(row.mode).removeprefix("CONSULTATION_MODE_").lower(),
        "assistance": types.Assistance.Name(row.assistance).removeprefix("ASSISTANCE_").lower(),
        "start": row.start_at.isoformat(),
        "end": row.end_at.isoformat(),
        "held_until": row.held_until.isoformat() if row.held_until else None,
        "consultation_id": row.consultation_id,
        "outcome_by": row.outcome_by,
    }


async def book(
    uow: UnitOfWork,
    command: BookSlot,
    hold_ttl: timedelta,
    statements: direct.Statements | None = None,
) -> Outcome:
    """Hold or book one slot; a retried request with the same Idempotency-Key gets the first
    result; a taken slot is a 409 decided by the database.

    Without an Idempotency-Key or a cabin, and given `statements`, the booking is written by
    one statement (appointment and outbox row together, see `db.direct_booking`); a refusal
    that a lapsed hold may explain goes the transactional way, which releases it."""
    if statements is not None and not command.idempotency_key and command.resource_id is None:
        outcome = await retry_on_conflict(lambda: _book_directly(statements, command, hold_ttl))
        if outcome is not None:
            return outcome
    return await retry_on_conflict(lambda: _book_once(uow, command, hold_ttl))


async def _book_directly(
    statements: direct.Statements, command: BookSlot, hold_ttl: timedelta
) -> Outcome | None:
    """The context (remembered from an earlier booking, or read), then one write statement
    that checks the context is still current; a stale one is read again. A refusal by the
    rules is only ever given on a context just read."""
    now = utcnow()
    key = (command.responder_id, command.site_id)
    known: _KnownContext | None = statements.recall(key)
    async with statements.connect() as connection:
        for _ in range(_STALE_ATTEMPTS):
            remembered = known is not None
            if known is None:
                context = await direct.booking_context(
                    connection, command.responder_id, command.site_id
                )
                known = _KnownContext(context, _schedule_of(context))
            try:
                values = _new_appointment(command, known.context, known.schedule, now, hold_ttl)
            except DomainError:
                statements.forget(key)
                if not remembered:
                    raise
                known = None
                continue
            row = SimpleNamespace(**values)
            event = outbox_row(
                _created_event(command, row, now),
                subject=str(row.id),
                max_event_bytes=statements.max_event_bytes,
            )
            written = await direct.book_with_event(connection, values, event, known.context)
            if written is not direct.Written.STALE:
                break
            statements.forget(key)
            known = None
        else:
            return None  # the context keeps changing: the transactional path reads it locked
    statements.remember(key, known)
    if written is direct.Written.TAKEN:
        BOOKING_CONFLICTS.inc()
        raise ConflictError("start", "the responder is already booked at that time")
    if written is direct.Written.LAPSED_IN_THE_WAY:
        return None
    APPOINTMENTS.labels("held" if command.hold else "booked").inc()
    return Outcome(201, appointment_view(row))


_STALE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _KnownContext:
    context: direct.BookingContext
    schedule: Schedule | None


def _schedule_of(context: Any) -> Schedule | None:
    if context.rules is None:
        return None
    return schedule_from_document(context.time_zone, context.rules)


def _new_appointment(
    command: BookSlot,
    context: Any,
    schedule: Schedule | None,
    now: datetime,
    hold_ttl: timedelta,
) -> dict[str, Any]:
    """The row to insert, once the rules allow it (DomainError otherwise). Times in UTC, as
    they read back from the database."""
    if context.responder_id is None or not context.responder_active:
        raise DomainError("responder_id", "unknown or inactive responder")
    if context.departement is None or not context.site_active:
        raise DomainError("site_id", "unknown or inactive site")
    _check_cabin(command, context)
    specialty = _specialty(context, command.specialty_code)
    if schedule is None:
        raise DomainError("responder_id", "the responder has no schedule")
    end = command.end or command.start + schedule.slot_length(command.act)
    check_bookable(schedule, command.act, command.start, end, now)
    if command.resource_id:
        # Only the transactional path books a cabin: its context carries the site's hours.
        check_site_open(site_hours(context.opening_hours), command.start, end, context.site_name)
    block_end = end + timedelta(minutes=schedule.buffer_minutes)
    return {
        "id": uuid.uuid4(),
        "site_id": command.site_id,
        "responder_id": command.responder_id,
        "resource_id": command.resource_id,
        "specialty_code": specialty,
        "act": command.act,
        "departement": context.departement,
        "patient_ref": command.patient_ref,
        "mode": types.CONSULTATION_MODE_SCHEDULED,
        "assistance": command.assistance,
        "status": "held" if command.hold else "booked",
        "start_at": command.start.astimezone(UTC),
        "end_at": end.astimezone(UTC),
        "block_end": block_end.astimezone(UTC),
        "held_until": now + hold_ttl if command.hold else None,
        "blocking": True,
        "consultation_id": None,
        "created_by": command.created_by,
        "created_at": now,
        "updated_at": now,
        "outcome_by": None,
        "session_id": None,
        "cancel_reason": None,
    }


def site_hours(document: str | dict[str, Any] | None) -> OpeningHours | None:
    """A site's structured hours from the read model (JSON text, as the booking context
    reads it, or the document); None when unknown (never published, a note only, or not
    interpretable): then nothing is refused on their account."""
    try:
        if isinstance(document, str):
            return parse_opening_hours_json(document)
        return parse_opening_hours(document)
    except UninterpretableHoursError:
        return None


def _created_event(command: BookSlot, row: Any, now: datetime) -> Message:
    if command.hold:
        return ev.AppointmentHeld(
            **appointment_context(row), held_at=ts(now), held_until=ts(row.held_until)
        )
    return ev.AppointmentBooked(**appointment_context(row), booked_at=ts(now))


async def _book_once(uow: UnitOfWork, command: BookSlot, hold_ttl: timedelta) -> Outcome:
    now = utcnow()
    async with uow:
        session = uow.session
        if command.idempotency_key:
            earlier = await repo.claim_idempotency_key(
                session, command.idempotency_scope, command.idempotency_key, now
            )
            if earlier is not None:
                return Outcome(earlier.status, earlier.body)
        context = await repo.booking_context(
            session, command.responder_id, command.site_id, command.resource_id
        )
        values = _new_appointment(command, context, _schedule_of(context), now, hold_ttl)
        row = await _insert_releasing_lapsed_holds(uow, now, values)
        await uow.record(_created_event(command, row, now), subject=str(row.id))
        outcome = Outcome(201, appointment_view(row))
        if command.idempotency_key:
            await repo.store_idempotent_result(
                session, command.idempotency_scope, command.idempotency_key, 201, outcome.body
            )
        await uow.commit()
    APPOINTMENTS.labels("held" if command.hold else "booked").inc()
    return outcome


def _check_cabin(command: BookSlot, context: Any) -> None:
    if command.assistance == types.ASSISTANCE_ASSISTED and not command.resource_id:
        raise DomainError("resource_id", "an assisted teleconsultation needs a cabin")
    if command.resource_id and (
        not context.cabin_active or context.cabin_site_id != command.site_id
    ):
        raise DomainError("resource_id", "unknown cabin for this site")


async def _insert_releasing_lapsed_holds(
    uow: UnitOfWork, now: datetime, values: dict[str, Any]
) -> Row[Any]:
    """Insert a new blocking row (the caller holds the queueing locks). Lapsed holds in the
    way are released only when the database refused the row: the common case costs one
    statement, and a refusal that remains is a conflict."""
    row = await repo.insert_appointment_if_free(uow.session, values)
    if row is not None:
        return row
    released = await repo.release_expired_holds(
        uow.session,
        now,
        responder_id=values["responder_id"],
        resource_id=values["resource_id"],
        start=values["start_at"],
        end=values["block_end"],
    )
    for lapsed in released:
        await record_hold_expired(uow, lapsed, now)
    if not released and values["resource_id"] is None:
        # Nothing lapsed was in the way: a live booking of the responder refused the row
        # (the only constraint that applies without a cabin). No statement more: losers of a
        # hot-slot race hold the queue for as little as possible.
        BOOKING_CONFLICTS.inc()
        raise ConflictError("start", "the responder is already booked at that time")
    # Inserted again without the arbiter, so that a remaining conflict names its constraint.
    return await _insert(uow, values)


def _specialty(responder: Any, wanted: str | None) -> str:
    codes: list[str] = list(responder.specialty_codes)
    if wanted:
        if wanted not in codes:
            raise DomainError("specialty_code", "the responder does not practise this specialty")
        return wanted
    return codes[0] if codes else ""


async def _release_in_the_way(
    uow: UnitOfWork,
    now: datetime,
    responder_id: str,
    resource_id: str | None,
    start: datetime,
    end: datetime,
) -> None:
    await repo.queue_for_resources(
        uow.session, [responder_id] + ([resource_id] if resource_id else [])
    )
    released = await repo.release_expired_holds(
        uow.session, now, responder_id=responder_id, resource_id=resource_id, start=start, end=end
    )
    for row in released:
        await record_hold_expired(uow, row, now)


async def record_hold_expired(uow: UnitOfWork, row: Row[Any], now: datetime) -> None:
    await uow.record(
        ev.AppointmentCancelled(
            **appointment_context(row),
            cancelled_at=ts(now),
            reason=ev.CANCEL_REASON_HOLD_EXPIRED,
            cancelled_by=ev.ACTOR_SYSTEM,
        ),
        subject=str(row.id),
    )
    APPOINTMENTS.labels("hold_expired").inc()


async def _insert(uow: UnitOfWork, values: dict[str, Any]) -> Row[Any]:
    try:
        return await repo.insert_appointment(uow.session, values)
    except IntegrityError as error:
        raise _conflict_or_raise(error) from error


def _conflict_or_raise(error: IntegrityError) -> Exception:
    if repo.sqlstate(error) == repo.EXCLUSION_VIOLATION:
        BOOKING_CONFLICTS.inc()
        which = "cabin" if "resource" in str(error.orig) else "responder"
        return ConflictError("start", f"the {which} is already booked at that time")
    return error


async def _load_scoped(uow: UnitOfWork, appointment_id: uuid.UUID, site_id: str | None) -> Row[Any]:
    row = await repo.appointment(uow.session, appointment_id, for_update=True)
    if row is None or (site_id is not None and row.site_id != site_id):
        raise NotFoundError("appointment_id", "no such appointment")
    return row


async def get_appointment(
    uow: UnitOfWork, appointment_id: uuid.UUID, site_id: str | None
) -> dict[str, Any]:
    async with uow:
        row = await repo.appointment(uow.session, appointment_id)
    if row is None or (site_id is not None and row.site_id != site_id):
        raise NotFoundError("appointment_id", "no such appointment")
    return appointment_view(row)


async def confirm(
    uow: UnitOfWork, appointment_id: uuid.UUID, site_id: str | None, patient_ref: str | None
) -> dict[str, Any]:
    """Turn a live hold into a booking (an expired hold cannot be confirmed)."""
    now = utcnow()
    async with uow:
        row = await _load_scoped(uow, appointment_id, site_id)
        if row.status != "held":
            raise ConflictError(
                "status", f"only a held appointment can be confirmed ({row.status})"
            )
        if row.held_until <= now or not row.blocking:
            raise ConflictError("held_until", "the hold has expired")
        row = await repo.update_appointment(
            uow.session,
            appointment_id,
            status="booked",
            held_until=None,
            updated_at=now,
            patient_ref=patient_ref or row.patient_ref,
        )
        await uow.record(
            ev.AppointmentBooked(**appointment_context(row), booked_at=ts(now)),
            subject=str(row.id),
        )
        await uow.commit()
    APPOINTMENTS.labels("confirmed").inc()
    return appointment_view(row)


async def cancel(
    uow: UnitOfWork,
    appointment_id: uuid.UUID,
    site_id: str | None,
    *,
    reason: ev.CancelReason.ValueType,
    actor: ev.Actor.ValueType,
    notice: timedelta,
    override_notice: bool,
    hold_ttl: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """Cancel with a reason; inside the minimum notice only a responder may (override).
    The freed slot is offered at once to the waitlist (as a hold)."""
    now = utcnow()
    async with uow:
        row = await _load_scoped(uow, appointment_id, site_id)
        if row.status not in ACTIVE:
            raise ConflictError("status", f"cannot cancel an appointment that is {row.status}")
        if not override_notice and row.status == "booked" and row.start_at - now < notice:
            raise ConflictError("start", "too late to cancel (minimum notice)")
        row = await repo.update_appointment(
            uow.session,
            appointment_id,
            status="cancelled",
            blocking=False,
            cancel_reason=reason,
            updated_at=now,
        )
        await uow.record(
            ev.AppointmentCancelled(
                **appointment_context(row), cancelled_at=ts(now), reason=reason, cancelled_by=actor
            ),
            subject=str(row.id),
        )
        await offer_released_slot(uow, row, hold_ttl)
        await uow.commit()
    APPOINTMENTS.labels("cancelled").inc()
    return appointment_view(row)


async def reschedule(
    uow: UnitOfWork,
    appointment_id: uuid.UUID,
    site_id: str | None,
    *,
    start: datetime,
    responder_id: str | None,
    actor: ev.Actor.ValueType,
    notice: timedelta,
    override_notice: bool,
    hold_ttl: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """Move an appointment in one transaction: the old time is released only if the new one
    is taken (the row is updated in place under the exclusion constraints), and is then
    offered to the waitlist like a cancelled one."""
    now = utcnow()
    async with uow:
        row = await _load_scoped(uow, appointment_id, site_id)
        if row.status not in ACTIVE:
            raise ConflictError("status", f"cannot reschedule an appointment that is {row.status}")
        if not override_notice and row.start_at - now < notice:
            raise ConflictError("start", "too late to reschedule (minimum notice)")
        target = responder_id or row.responder_id
        responder = await repo.responder(uow.session, target)
        if responder is None or not responder.active:
            raise DomainError("responder_id", "unknown or inactive responder")
        schedule_row = await repo.schedule_of(uow.session, target)
        if schedule_row is None:
            raise DomainError("responder_id", "the responder has no schedule")
        schedule = schedule_from_document(schedule_row.time_zone, schedule_row.rules)
        end = start + schedule.slot_length(row.act)
        check_bookable(schedule, row.act, start, end, now)
        if row.resource_id is not None:
            site = await repo.site(uow.session, row.site_id)
            if site is not None:
                check_site_open(site_hours(site.opening_hours), start, end, site.name)
        block_end = end + timedelta(minutes=schedule.buffer_minutes)
        await _release_in_the_way(uow, now, target, row.resource_id, start, block_end)
        try:
            updated = await repo.update_appointment(
                uow.session,
                appointment_id,
                responder_id=target,
                start_at=start,
                end_at=end,
                block_end=block_end,
                updated_at=now,
            )
        except IntegrityError as error:
            raise _conflict_or_raise(error) from error
        await uow.record(
            ev.AppointmentRescheduled(
                **appointment_context(updated),
                rescheduled_at=ts(now),
                previous_start=ts(row.start_at),
                previous_end=ts(row.end_at),
                previous_responder_id=row.responder_id,
                rescheduled_by=actor,
            ),
            subject=str(row.id),
        )
        await offer_released_slot(uow, row, hold_ttl)
        await uow.commit()
    APPOINTMENTS.labels("rescheduled").inc()
    return appointment_view(updated)


async def record_outcome(
    uow: UnitOfWork,
    row: Row[Any],
    *,
    fulfilled: bool,
    actor: ev.Actor.ValueType,
    who: str,
    session_id: str = "",
    missing_side: types.NoShowSide.ValueType = types.NO_SHOW_SIDE_UNSPECIFIED,
) -> Row[Any]:
    """Fulfilled or no-show, with who recorded it (inside the caller's transaction)."""
    if row.status != "booked":
        raise ConflictError("status", f"cannot record an outcome for an appointment {row.status}")
    now = utcnow()
    updated = await repo.update_appointment(
        uow.session,
        row.id,
        status="fulfilled" if fulfilled else "noshow",
        outcome_by=who,
        session_id=session_id or None,
        updated_at=now,
    )
    context = appointment_context(updated)
    if fulfilled:
        message: Any = ev.AppointmentFulfilled(
            **context, recorded_at=ts(now), recorded_by=actor, session_id=session_id
        )
    else:
        message = ev.AppointmentNoShow(
            **context,
            recorded_at=ts(now),
            recorded_by=actor,
            session_id=session_id,
            missing_side=missing_side,
        )
    await uow.record(message, subject=str(row.id))
    APPOINTMENTS.labels("fulfilled" if fulfilled else "noshow").inc()
    return updated


async def record_outcome_by_person(
    uow: UnitOfWork,
    appointment_id: uuid.UUID,
    site_id: str | None,
    *,
    fulfilled: bool,
    actor: ev.Actor.ValueType,
    who: str,
    missing_side: types.NoShowSide.ValueType,
) -> dict[str, Any]:
    async with uow:
        row = await _load_scoped(uow, appointment_id, site_id)
        updated = await record_outcome(
            uow, row, fulfilled=fulfilled, actor=actor, who=who, missing_side=missing_side
        )
        await uow.commit()
    return appointment_view(updated)


async def expire_holds(
    uow: UnitOfWork, batch: int = 200, hold_ttl: timedelta = timedelta(minutes=5)
) -> int:
    """Release holds past their TTL, tell everyone and offer the freed slots to the waitlist
    (run by the background sweeper)."""
    now = utcnow()
    async with uow:
        released = await repo.release_expired_holds(uow.session, now, limit=batch)
        for row in released:
            await record_hold_expired(uow, row, now)
            await offer_released_slot(uow, row, hold_ttl)
        await uow.commit()
    return len(released)
