"""On-demand (unscheduled) teleconsultation: request -> offers -> first accept wins -> booked;
nobody within N seconds: the offer widens to the region; within M minutes: it expires."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from maillage.booking.v1 import events_pb2 as ev
from maillage.common.v1 import types_pb2 as types
from maillage_booking.db import consultation_repository as crepo
from maillage_booking.db import repositories as repo
from maillage_booking.domain.dispatch import Candidate, eligible_in_tier
from maillage_booking.domain.errors import ConflictError, DomainError, NotFoundError
from maillage_booking.settings import BookingSettings
from maillage_booking.use_cases.appointments import record_hold_expired
from maillage_booking.use_cases.common import appointment_context, duration, ts, utcnow
from maillage_common.db.unit_of_work import UnitOfWork

CONSULTATIONS = Counter(
    "maillage_booking_consultations_total", "On-demand request outcomes", ["outcome"]
)
TIME_TO_ACCEPT = Histogram(
    "maillage_booking_time_to_accept_seconds",
    "From an on-demand request to its acceptance",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800),
)


@dataclass(frozen=True, slots=True)
class RequestConsultation:
    site_id: str
    specialty_code: str
    act: int
    urgency: str
    patient_ref: str
    assistance: int
    resource_id: str


def _context(row: Row[Any]) -> dict[str, Any]:
    return {
        "consultation_id": str(row.id),
        "site_id": row.site_id,
        "responder_id": row.responder_id or "",
        "specialty_code": row.specialty_code,
        "act": row.act,
        "departement": row.departement,
        "patient_ref": row.patient_ref,
        "assistance": row.assistance,
        "resource_id": row.resource_id,
        "requested_at": ts(row.requested_at),
    }


def consultation_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "status": row.status,
        "site_id": row.site_id,
        "departement": row.departement,
        "specialty_code": row.specialty_code,
        "urgency": row.urgency,
        "patient_ref": row.patient_ref,
        "resource_id": row.resource_id,
        "tier": row.tier,
        "offers_made": row.offers_made,
        "requested_at": row.requested_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "accepted_at": row.accepted_at.isoformat() if row.accepted_at else None,
        "responder_id": row.responder_id,
        "appointment_id": str(row.appointment_id) if row.appointment_id else None,
        "time_to_accept_seconds": (
            (row.accepted_at - row.requested_at).total_seconds() if row.accepted_at else None
        ),
    }


async def request_consultation(
    uow: UnitOfWork, command: RequestConsultation, settings: BookingSettings
) -> dict[str, Any]:
    """Record the request and offer it at once to the eligible responders on duty."""
    now = utcnow()
    async with uow:
        site = await repo.site(uow.session, command.site_id)
        if site is None or not site.active:
            raise DomainError("site_id", "unknown or inactive site")
        cabin = await repo.kiosk(uow.session, command.resource_id)
        if cabin is None or cabin.site_id != command.site_id:
            raise DomainError("resource_id", "unknown cabin for this site")
        row = await crepo.insert_consultation(
            uow.session,
            {
                "id": uuid.uuid4(),
                "site_id": command.site_id,
                "departement": site.departement,
                "specialty_code": command.specialty_code,
                "act": command.act,
                "urgency": command.urgency,
                "patient_ref": command.patient_ref,
                "assistance": command.assistance,
                "resource_id": command.resource_id,
                "status": "open",
                "tier": 1,
                "offers_made": 0,
                "requested_at": now,
                "widen_at": now + timedelta(seconds=settings.ondemand_widen_after_seconds),
                "expires_at": now + timedelta(seconds=settings.ondemand_expire_after_seconds),
            },
        )
        await uow.record(
            ev.ConsultationRequested(**_context(row), expires_at=ts(row.expires_at)),
            subject=str(row.id),
        )
        row = await _dispatch(uow, row, 1, settings)
        if row.offers_made == 0:
            # Nobody local at all: widen at once rather than leave the patient waiting.
            row = await _dispatch(uow, row, 2, settings)
        await uow.commit()
    CONSULTATIONS.labels("requested").inc()
    return consultation_view(row)


async def _dispatch(
    uow: UnitOfWork, row: Row[Any], tier: int, settings: BookingSettings
) -> Row[Any]:
    now = utcnow()
    already = await crepo.offered_to(uow.session, row.id)
    rows = await crepo.on_duty_candidates(uow.session, row.specialty_code, row.act, already)
    # Busy means busy during the call an accept would book, not only at this instant: a
    # responder whose scheduled call starts in five minutes would only answer with a 409.
    call_end = now + timedelta(minutes=settings.ondemand_slot_minutes)
    busy = await repo.responder_busy(uow.session, [r.id for r in rows], now, call_end)
    candidates = [
        Candidate(r.id, tuple(r.departements), r.last_offered_at) for r in rows if r.id not in busy
    ]
    chosen = eligible_in_tier(candidates, row.departement, tier, settings.ondemand_offers_per_tier)
    attempt = row.offers_made
    for candidate in chosen:
        attempt += 1
        await crepo.add_offer(
            uow.session, row.id, candidate.responder_id, attempt, now, row.expires_at
        )
        await uow.record(
            ev.ConsultationOffered(
                **{**_context(row), "responder_id": candidate.responder_id},
                offered_at=ts(now),
                offer_expires_at=ts(row.expires_at),
                attempt=attempt,
            ),
            subject=str(row.id),
        )
    return await crepo.update_consultation(uow.session, row.id, tier=tier, offers_made=attempt)


async def accept(
    uow: UnitOfWork, consultation_id: uuid.UUID, responder_id: str, settings: BookingSettings
) -> dict[str, Any]:
    """The first accept wins atomically and books the responder (and cabin) from now on;
    a later accept is a 409."""
    now = utcnow()
    async with uow:
        row = await crepo.claim_open(uow.session, consultation_id, responder_id, now)
        if row is None:
            current = await crepo.consultation(uow.session, consultation_id)
            if current is None or responder_id not in await crepo.offered_to(
                uow.session, consultation_id
            ):
                raise NotFoundError("consultation_id", "no such offer for you")
            raise ConflictError("status", f"the request is already {current.status}")
        responder = await repo.responder(uow.session, responder_id)
        assert responder is not None
        end = now + timedelta(minutes=settings.ondemand_slot_minutes)
        resource = row.resource_id if row.assistance == types.ASSISTANCE_ASSISTED else None
        await repo.queue_for_resources(
            uow.session, [responder_id] + ([resource] if resource else [])
        )
        released = await repo.release_expired_holds(
            uow.session, now, responder_id=responder_id, resource_id=resource, start=now, end=end
        )
        for held in released:
            await record_hold_expired(uow, held, now)
        appointment = await _book_now(uow, row, responder_id, resource, now, end)
        row = await crepo.update_consultation(
            uow.session, consultation_id, appointment_id=appointment.id
        )
        await uow.record(
            ev.ConsultationAccepted(
                **_context(row),
                accepted_at=ts(now),
                time_to_accept=duration(now - row.requested_at),
                appointment_id=str(appointment.id),
            ),
            subject=str(row.id),
        )
        await uow.record(
            ev.AppointmentBooked(
                **appointment_context(appointment), booked_at=ts(now), consultation_id=str(row.id)
            ),
            subject=str(appointment.id),
        )
        await uow.commit()
    CONSULTATIONS.labels("accepted").inc()
    TIME_TO_ACCEPT.observe((now - row.requested_at).total_seconds())
    return consultation_view(row)


async def _book_now(
    uow: UnitOfWork,
    row: Row[Any],
    responder_id: str,
    resource: str | None,
    now: Any,
    end: Any,
) -> Row[Any]:
    try:
        return await repo.insert_appointment(
            uow.session,
            {
                "id": uuid.uuid4(),
                "site_id": row.site_id,
                "responder_id": responder_id,
                "resource_id": resource,
                "specialty_code": row.specialty_code,
                "act": row.act,
                "departement": row.departement,
                "patient_ref": row.patient_ref,
                "mode": types.CONSULTATION_MODE_ON_DEMAND,
                "assistance": row.assistance,
                "status": "booked",
                "start_at": now,
                "end_at": end,
                "block_end": end,
                "held_until": None,
                "blocking": True,
                "consultation_id": str(row.id),
                "created_by": f"responder:{responder_id}",
                "created_at": now,
                "updated_at": now,
            },
        )
    except IntegrityError as error:
        if repo.sqlstate(error) == repo.EXCLUSION_VIOLATION:
            raise ConflictError("responder_id", "you (or the cabin) are busy right now") from error
        raise


async def read_consultation(
    uow: UnitOfWork, consultation_id: uuid.UUID, site_id: str | None
) -> dict[str, Any]:
    async with uow:
        row = await crepo.consultation(uow.session, consultation_id)
    if row is None or (site_id is not None and row.site_id != site_id):
        raise NotFoundError("consultation_id", "no such consultation")
    return consultation_view(row)


async def responder_inbox(uow: UnitOfWork, responder_id: str) -> list[dict[str, Any]]:
    """Open requests offered to this responder, oldest offer first."""
    async with uow:
        rows = await crepo.inbox(uow.session, responder_id, utcnow())
    return [
        {**consultation_view(r), "offered_at": r.offered_at.isoformat(), "attempt": r.attempt}
        for r in rows
    ]


async def sweep_consultations(uow: UnitOfWork, settings: BookingSettings) -> int:
    """Widen requests nobody took in N seconds; expire those nobody took in M minutes."""
    now = utcnow()
    async with uow:
        expiring = await crepo.due(uow.session, now, expiring=True)
        for row in expiring:
            updated = await crepo.update_consultation(uow.session, row.id, status="expired")
            await uow.record(
                ev.ConsultationExpired(
                    **_context(updated), expired_at=ts(now), offers_made=updated.offers_made
                ),
                subject=str(row.id),
            )
            CONSULTATIONS.labels("expired").inc()
        widening = await crepo.due(uow.session, now, expiring=False)
        for row in widening:
            await _dispatch(uow, row, 2, settings)
        await uow.commit()
    return len(expiring) + len(widening)
