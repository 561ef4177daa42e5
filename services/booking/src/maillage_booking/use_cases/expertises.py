"""Tele-expertise (asynchronous): requested -> accepted -> answered | rejected -> closed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Row, insert, select, update

from maillage.booking.v1 import events_pb2 as ev
from maillage.common.v1 import types_pb2 as types
from maillage_booking.db import repositories as repo
from maillage_booking.db.blob_store import BlobStore
from maillage_booking.db.tables import attachments, expertises
from maillage_booking.domain.errors import DomainError, NotFoundError
from maillage_booking.domain.expertise import (
    ExpertiseStatus,
    check_attachment,
    check_transition,
    is_overdue,
)
from maillage_booking.use_cases.common import duration, ts, utcnow
from maillage_common.db.unit_of_work import UnitOfWork

EXPERTISES = Counter(
    "maillage_booking_expertises_total", "Tele-expertise transitions", ["transition"]
)


@dataclass(frozen=True, slots=True)
class RequestExpertise:
    site_id: str
    requester_id: str
    responder_id: str
    specialty_code: str | None
    patient_ref: str
    level: int
    question: str
    clinical_context: str
    response_delay: timedelta


def _context(row: Row[Any]) -> dict[str, Any]:
    return {
        "expertise_id": str(row.id),
        "site_id": row.site_id,
        "responder_id": row.responder_id,
        "specialty_code": row.specialty_code,
        "act": types.ACT_TELEEXPERTISE,
        "departement": row.departement,
        "patient_ref": row.patient_ref,
        "level": row.level,
        "requester_id": row.requester_id,
        "requested_at": ts(row.requested_at),
        "requested_response_delay": duration(timedelta(seconds=row.delay_seconds)),
    }


def expertise_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "status": row.status,
        "site_id": row.site_id,
        "requester_id": row.requester_id,
        "responder_id": row.responder_id,
        "specialty_code": row.specialty_code,
        "patient_ref": row.patient_ref,
        "level": row.level,
        "question": row.question,
        "clinical_context": row.clinical_context,
        "requested_at": row.requested_at.isoformat(),
        "due_at": row.due_at.isoformat(),
        "overdue": is_overdue(
            ExpertiseStatus(row.status), row.requested_at, row.due_at - row.requested_at, utcnow()
        ),
        "report": row.report,
        "reject_reason": row.reject_reason,
        "overdue_at": row.overdue_at.isoformat() if row.overdue_at else None,
    }


async def request_expertise(uow: UnitOfWork, command: RequestExpertise) -> dict[str, Any]:
    """Send a case to an expert; attachments are added afterwards, outside the events."""
    now = utcnow()
    async with uow:
        site = await repo.site(uow.session, command.site_id)
        if site is None or not site.active:
            raise DomainError("site_id", "unknown or inactive site")
        responder = await repo.responder(uow.session, command.responder_id)
        if responder is None or not responder.active:
            raise DomainError("responder_id", "unknown or inactive responder")
        specialty = command.specialty_code or (list(responder.specialty_codes) or [""])[0]
        if specialty not in responder.specialty_codes:
            raise DomainError("specialty_code", "the responder does not practise this specialty")
        row = (
            await uow.session.execute(
                insert(expertises)
                .values(
                    id=uuid.uuid4(),
                    site_id=command.site_id,
                    departement=site.departement,
                    requester_id=command.requester_id,
                    responder_id=command.responder_id,
                    specialty_code=specialty,
                    patient_ref=command.patient_ref,
                    level=command.level,
                    question=command.question,
                    clinical_context=command.clinical_context,
                    status=ExpertiseStatus.REQUESTED.value,
                    requested_at=now,
                    delay_seconds=int(command.response_delay.total_seconds()),
                    due_at=now + command.response_delay,
                )
                .returning(expertises)
            )
        ).one()
        await uow.record(ev.ExpertiseRequested(**_context(row)), subject=str(row.id))
        await uow.commit()
    EXPERTISES.labels("requested").inc()
    return expertise_view(row)


async def _load(uow: UnitOfWork, expertise_id: uuid.UUID, site_id: str | None) -> Row[Any]:
    row = (
        await uow.session.execute(
            select(expertises).where(expertises.c.id == expertise_id).with_for_update()
        )
    ).first()
    if row is None or (site_id is not None and row.site_id != site_id):
        raise NotFoundError("expertise_id", "no such tele-expertise")
    return row


async def read_expertise(
    uow: UnitOfWork, expertise_id: uuid.UUID, site_id: str | None
) -> dict[str, Any]:
    async with uow:
        row = await _load(uow, expertise_id, site_id)
    return expertise_view(row)


async def transition(
    uow: UnitOfWork,
    expertise_id: uuid.UUID,
    action: str,
    *,
    site_id: str | None = None,
    responder_id: str | None = None,
    report: str | None = None,
    reason: ev.RejectReason.ValueType = ev.REJECT_REASON_UNSPECIFIED,
    actor: ev.Actor.ValueType = ev.ACTOR_RESPONDER,
) -> dict[str, Any]:
    """accept / answer / reject (by the addressed expert) or close (either side)."""
    now = utcnow()
    async with uow:
        row = await _load(uow, expertise_id, site_id)
        if responder_id is not None and row.responder_id != responder_id:
            raise NotFoundError("expertise_id", "no such tele-expertise for you")
        check_transition(ExpertiseStatus(row.status), action)
        values, message = _effect(row, action, now, report, reason, actor)
        updated = (
            await uow.session.execute(
                update(expertises)
                .where(expertises.c.id == expertise_id)
                .values(**values)
                .returning(expertises)
            )
        ).one()
        message_type, extra = message
        await uow.record(message_type(**_context(updated), **extra), subject=str(row.id))
        await uow.commit()
    EXPERTISES.labels(action).inc()
    return expertise_view(updated)


def _effect(
    row: Row[Any],
    action: str,
    now: Any,
    report: str | None,
    reason: ev.RejectReason.ValueType,
    actor: ev.Actor.ValueType,
) -> tuple[dict[str, Any], tuple[Any, dict[str, Any]]]:
    elapsed = duration(now - row.requested_at)
    if action == "accept":
        return {"status": "accepted", "accepted_at": now}, (
            ev.ExpertiseAccepted,
            {"accepted_at": ts(now), "time_to_accept": elapsed},
        )
    if action == "answer":
        if not report:
            raise DomainError("report", "an answer needs a report")
        return {"status": "answered", "answered_at": now, "report": report}, (
            ev.ExpertiseAnswered,
            {"answered_at": ts(now), "response_time": elapsed},
        )
    if action == "reject":
        return {"status": "rejected", "reject_reason": int(reason)}, (
            ev.ExpertiseRejected,
            {"rejected_at": ts(now), "reason": reason},
        )
    outcome = {
        "answered": ev.EXPERTISE_OUTCOME_ANSWERED,
        "rejected": ev.EXPERTISE_OUTCOME_REJECTED,
    }.get(row.status, ev.EXPERTISE_OUTCOME_WITHDRAWN)
    return {"status": "closed", "closed_at": now, "outcome": int(outcome)}, (
        ev.ExpertiseClosed,
        {"closed_at": ts(now), "outcome": outcome, "closed_by": actor},
    )


async def flag_overdue(uow: UnitOfWork, batch: int = 200) -> int:
    """Record `ExpertiseOverdue` for requests still waiting past their delay: exactly once per
    request, because the mark (`overdue_at`) and the event commit in one transaction and the
    claim skips rows another sweeper (replica) holds. Run by the background sweeper."""
    now = utcnow()
    async with uow:
        flagged = await repo.mark_overdue_expertises(uow.session, now, limit=batch)
        for row in flagged:
            await uow.record(
                ev.ExpertiseOverdue(
                    **_context(row),
                    due_at=ts(row.due_at),
                    detected_at=ts(now),
                    accepted=row.status == ExpertiseStatus.ACCEPTED,
                ),
                subject=str(row.id),
            )
        await uow.commit()
    if flagged:
        EXPERTISES.labels("overdue").inc(len(flagged))
    return len(flagged)


async def add_attachment(
    uow: UnitOfWork,
    store: BlobStore,
    expertise_id: uuid.UUID,
    site_id: str | None,
    *,
    filename: str,
    content_type: str,
    data: bytes,
    max_bytes: int,
) -> dict[str, Any]:
    """Store an image or PDF with the case: the bytes in the blob store (never in an event nor
    in PostgreSQL), the metadata and checksum in PostgreSQL. The blob is written before the
    row, in the row's transaction: a failed write leaves no record; a failed commit leaves at
    most an unreferenced blob (content-addressed, harmless)."""
    check_attachment(content_type, data, max_bytes)
    async with uow:
        row = await _load(uow, expertise_id, site_id)
        if row.status == ExpertiseStatus.CLOSED:
            raise DomainError("expertise_id", "the tele-expertise is closed")
        digest = await store.put(data)
        attachment_id = uuid.uuid4()
        await uow.session.execute(
            insert(attachments).values(
                id=attachment_id,
                expertise_id=expertise_id,
                filename=filename,
                content_type=content_type,
                size=len(data),
                sha256=digest,
                created_at=utcnow(),
            )
        )
        await uow.commit()
    return {
        "id": str(attachment_id),
        "filename": filename,
        "content_type": content_type,
        "size": len(data),
        "sha256": digest,
    }


async def read_attachment(
    uow: UnitOfWork,
    store: BlobStore,
    expertise_id: uuid.UUID,
    attachment_id: uuid.UUID,
    site_id: str | None,
) -> tuple[str, bytes]:
    async with uow:
        await _load(uow, expertise_id, site_id)
        row = (
            await uow.session.execute(
                select(attachments.c.content_type, attachments.c.sha256, attachments.c.data).where(
                    attachments.c.id == attachment_id, attachments.c.expertise_id == expertise_id
                )
            )
        ).first()
    if row is None:
        raise NotFoundError("attachment_id", "no such attachment")
    if row.sha256 is None:  # stored in PostgreSQL before the blob store existed
        return str(row.content_type), bytes(row.data)
    return str(row.content_type), await store.get(row.sha256)
