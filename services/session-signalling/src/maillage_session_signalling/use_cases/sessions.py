"""Use cases of the session lifecycle: each owns one transaction and records its events."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog

from maillage.session_signalling.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_session_signalling.db.repositories import SessionRepository
from maillage_session_signalling.domain.invitation import Invitation
from maillage_session_signalling.domain.lifecycle import (
    EndedBy,
    Fact,
    Lifecycle,
    LifecycleError,
    Role,
    SessionState,
)
from maillage_session_signalling.domain.quality import LinkStats, QualityLevel, quality_level
from maillage_session_signalling.domain.session import Session, SessionContext
from maillage_session_signalling.use_cases.events import (
    ENDED_BY_TO_PROTO,
    MISSING_TO_PROTO,
    event,
    participant,
    participants_of,
    timestamp,
)

_log = structlog.get_logger(__name__)

LEAVE_REASONS = {
    "hangup": events_pb2.LEAVE_REASON_HANGUP,
    "connection_lost": events_pb2.LEAVE_REASON_CONNECTION_LOST,
    "removed": events_pb2.LEAVE_REASON_REMOVED,
    "session_ended": events_pb2.LEAVE_REASON_SESSION_ENDED,
}
QUALITY_TO_PROTO = {
    QualityLevel.EXCELLENT: 1,
    QualityLevel.GOOD: 2,
    QualityLevel.POOR: 3,
    QualityLevel.LOST: 4,
}
ROLE_ENDS_AS = {
    Role.RESPONDER: EndedBy.RESPONDER,
    Role.PATIENT: EndedBy.PATIENT,
    Role.ASSISTANT: EndedBy.ASSISTANT,
    Role.COMPANION: EndedBy.PATIENT,
}


class SessionNotFoundError(LookupError):
    """No such session (or not visible to the caller)."""


class InvitationNotFoundError(LookupError):
    """No such invitation in this session."""


class InvitationRevokedError(LifecycleError):
    """The invitee's invitation was revoked."""


async def invite(
    uow: UnitOfWork,
    session_id: uuid.UUID,
    role: Role,
    invitee_id: str,
    invited_by: str,
    now: datetime,
    *,
    max_invitations: int,
) -> tuple[Session, Invitation]:
    """Record who invited whom, when; the session must still be open."""
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _locked(repository, session_id)
        if session.lifecycle.closed:
            raise LifecycleError(f"the session is {session.lifecycle.state}")
        invitation = Invitation.issue(
            session_id,
            role,
            invitee_id,
            invited_by,
            now,
            active_invitations=await repository.active_invitations(session_id),
            max_invitations=max_invitations,
        )
        await repository.add_invitation(invitation)
        await uow.commit()
    return session, invitation


async def revoke_invitation(
    uow: UnitOfWork, session_id: uuid.UUID, invitation_id: uuid.UUID, by: str, now: datetime
) -> tuple[Session, Invitation, bool]:
    """Revoke; an invitee still in the room is removed (ParticipantLeft, reason removed).

    Returns the session, the invitation and whether the invitee was present.
    """
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _locked(repository, session_id)
        invitation = await repository.invitation(session_id, invitation_id, for_update=True)
        if invitation is None:
            raise InvitationNotFoundError(str(invitation_id))
        was_active = invitation.active
        invitation = invitation.revoke(by, now)
        await repository.save_invitation(invitation)
        present = was_active and await repository.present(session_id, invitation.participant_id)
        if present:
            await repository.participant_left(session_id, invitation.participant_id, now, "removed")
            who = participant(invitation.participant_id, invitation.role)
            await _record(
                uow,
                events_pb2.ParticipantLeft,
                session,
                participant=who,
                left_at=now,
                reason=LEAVE_REASONS["removed"],
            )
        await uow.commit()
    return session, invitation, present


async def invitations(uow: UnitOfWork, session_id: uuid.UUID) -> list[Invitation]:
    async with uow:
        return await SessionRepository(uow.session).invitations(session_id)


async def invitation_active(
    uow: UnitOfWork, session_id: uuid.UUID, invitation_id: uuid.UUID
) -> bool:
    async with uow:
        found = await SessionRepository(uow.session).invitation(session_id, invitation_id)
    return found is not None and found.active


async def schedule_session(
    uow: UnitOfWork, context: SessionContext, start: datetime, end: datetime
) -> Session:
    """Create a session (idempotent per appointment) and record SessionScheduled."""
    async with uow:
        session = await schedule_in(uow, context, start, end)
        await uow.commit()
    return session


async def schedule_in(
    uow: UnitOfWork, context: SessionContext, start: datetime, end: datetime
) -> Session:
    """`schedule_session` inside a transaction the caller commits (event handlers)."""
    repository = SessionRepository(uow.session)
    if context.appointment_id:
        existing = await repository.active_for_appointment(context.appointment_id)
        if existing is not None:
            return existing
    session = Session.schedule(context, start, end)
    await repository.add(session)
    await uow.record(
        event(
            events_pb2.SessionScheduled,
            session,
            scheduled_start=timestamp(start),
            scheduled_end=timestamp(end),
        ),
        subject=str(session.session_id),
    )
    return session


async def revoke_in(uow: UnitOfWork, appointment_id: str, now: datetime) -> Session | None:
    """A cancelled or rescheduled appointment closes its session's room to new joins.

    Runs inside the caller's transaction (the booking event handler commits it).
    """
    repository = SessionRepository(uow.session)
    session = await repository.active_for_appointment(appointment_id)
    if session is None:
        return None
    try:
        revoked = session.with_lifecycle(session.lifecycle.revoke(now))
    except LifecycleError as error:
        _log.warning("session_not_revoked", session_id=str(session.session_id), why=str(error))
        return None
    await repository.save(revoked)
    return revoked


async def load_session(uow: UnitOfWork, session_id: uuid.UUID) -> Session:
    async with uow:
        session = await SessionRepository(uow.session).get(session_id)
    if session is None:
        raise SessionNotFoundError(str(session_id))
    return session


async def participant_joined(
    uow: UnitOfWork,
    session_id: uuid.UUID,
    participant_id: str,
    role: Role,
    professional_id: str,
    now: datetime,
    invitation_id: uuid.UUID | None = None,
) -> Session:
    """Record the join; the patient side arriving opens the waiting room (PatientWaiting).

    An invitee's invitation is checked under the session's lock, which its revocation also
    takes: a revocation is either seen here or sees this participant (and removes them).
    """
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _locked(repository, session_id)
        if invitation_id is not None:
            invitation = await repository.invitation(session_id, invitation_id)
            if invitation is None or not invitation.active:
                raise InvitationRevokedError("the invitation was revoked")
        lifecycle, facts = session.lifecycle.join(role, now)
        session = session.with_lifecycle(lifecycle)
        await repository.save(session)
        await repository.participant_joined(session_id, participant_id, role, professional_id, now)
        who = participant(participant_id, role, professional_id)
        await _record(uow, events_pb2.ParticipantJoined, session, participant=who, joined_at=now)
        if Fact.PATIENT_WAITING in facts:
            await _record(uow, events_pb2.PatientWaiting, session, waiting_since=now)
        await uow.commit()
    return session


async def participant_left(
    uow: UnitOfWork,
    session_id: uuid.UUID,
    participant_id: str,
    role: Role,
    reason: str,
    now: datetime,
    *,
    anyone_left: bool,
) -> Session:
    """Record the departure; when nobody remains an admitted/live session ends."""
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _locked(repository, session_id)
        await repository.participant_left(session_id, participant_id, now, reason)
        who = participant(participant_id, role)
        await _record(
            uow,
            events_pb2.ParticipantLeft,
            session,
            participant=who,
            left_at=now,
            reason=LEAVE_REASONS[reason],
        )
        if not anyone_left and not session.lifecycle.closed:
            session = await _last_one_gone(uow, repository, session, reason, now)
        await uow.commit()
    return session


async def _last_one_gone(
    uow: UnitOfWork, repository: SessionRepository, session: Session, reason: str, now: datetime
) -> Session:
    """Everyone hung up: the session ended. Everyone's connection was lost: it failed."""
    under_way = session.lifecycle.state in (SessionState.ADMITTED, SessionState.LIVE)
    if reason == "connection_lost" and under_way:
        return await _fail(
            uow, repository, session, events_pb2.FAILURE_REASON_NETWORK, "all connections lost", now
        )
    lifecycle, facts = session.lifecycle.everyone_left(now)
    return await _apply(uow, repository, session, lifecycle, facts)


async def admit(uow: UnitOfWork, session_id: uuid.UUID, by: Role, now: datetime) -> Session:
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _locked(repository, session_id)
        session = session.with_lifecycle(session.lifecycle.admit(by, now))
        await repository.save(session)
        await uow.commit()
    return session


async def media_connected(uow: UnitOfWork, session_id: uuid.UUID, now: datetime) -> Session:
    """The first answer between admitted peers starts the act (SessionStarted)."""
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _locked(repository, session_id)
        lifecycle, facts = session.lifecycle.media_connected(now)
        session = await _apply(uow, repository, session, lifecycle, facts)
        await uow.commit()
    return session


async def end_session(uow: UnitOfWork, session_id: uuid.UUID, by: Role, now: datetime) -> Session:
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _locked(repository, session_id)
        lifecycle, facts = session.lifecycle.end(ROLE_ENDS_AS[by], now)
        session = await _apply(uow, repository, session, lifecycle, facts)
        await uow.commit()
    return session


async def fail_session(
    uow: UnitOfWork, session_id: uuid.UUID, reason: int, detail: str, now: datetime
) -> Session:
    """A participant reports the session cannot go on (media, device, kiosk): SessionFailed."""
    async with uow:
        repository = SessionRepository(uow.session)
        session = await _fail(
            uow, repository, await _locked(repository, session_id), reason, detail, now
        )
        await uow.commit()
    return session


async def _fail(
    uow: UnitOfWork,
    repository: SessionRepository,
    session: Session,
    reason: int,
    detail: str,
    now: datetime,
) -> Session:
    lifecycle, _ = session.lifecycle.fail(now)
    session = session.with_lifecycle(lifecycle)
    await repository.save(session)
    await _record(
        uow, events_pb2.SessionFailed, session, failed_at=now, reason=reason, detail=detail
    )
    return session


async def declare_no_shows(uow: UnitOfWork, now: datetime, grace: timedelta) -> list[Session]:
    """Sessions still waiting for a side after start + grace become no-shows."""
    async with uow:
        repository = SessionRepository(uow.session)
        declared: list[Session] = []
        for session_id in await repository.due_for_no_show(now - grace):
            session = await _locked(repository, session_id)
            lifecycle, facts = session.lifecycle.check_no_show(now, grace)
            if facts:
                declared.append(await _apply(uow, repository, session, lifecycle, facts))
        await uow.commit()
    return declared


async def report_quality(
    uow: UnitOfWork,
    session_id: uuid.UUID,
    participant_id: str,
    role: Role,
    stats: LinkStats,
    now: datetime,
) -> QualityLevel:
    """A peer's periodic stats → its quality level and SessionQualityReported."""
    level = quality_level(stats)
    async with uow:
        repository = SessionRepository(uow.session)
        session = await repository.get(session_id)
        if session is None:
            raise SessionNotFoundError(str(session_id))
        await repository.set_quality(session_id, participant_id, level.value)
        await _record(
            uow,
            events_pb2.SessionQualityReported,
            session,
            participant=participant(participant_id, role),
            measured_at=now,
            rtt_ms=round(stats.rtt_ms),
            jitter_ms=round(stats.jitter_ms),
            loss_ratio=stats.loss_ratio,
            bitrate_kbps=round(stats.bitrate_kbps),
            level=QUALITY_TO_PROTO[level],
        )
        await uow.commit()
    return level


async def _locked(repository: SessionRepository, session_id: uuid.UUID) -> Session:
    session = await repository.get(session_id, for_update=True)
    if session is None:
        raise SessionNotFoundError(str(session_id))
    return session


async def _apply(
    uow: UnitOfWork,
    repository: SessionRepository,
    session: Session,
    lifecycle: Lifecycle,
    facts: tuple[Fact, ...],
) -> Session:
    session = session.with_lifecycle(lifecycle)
    await repository.save(session)
    for fact in facts:
        await _record_fact(uow, repository, session, fact)
    return session


async def _record_fact(
    uow: UnitOfWork, repository: SessionRepository, session: Session, fact: Fact
) -> None:
    life = session.lifecycle
    if fact is Fact.STARTED and life.started_at:
        rows = await repository.participants(session.session_id)
        await _record(
            uow,
            events_pb2.SessionStarted,
            session,
            started_at=life.started_at,
            participants=participants_of(rows),
        )
    elif fact is Fact.ENDED and life.ended_at and life.started_at and life.ended_by:
        rows = await repository.participants(session.session_id)
        durations = life.durations()
        await _record(
            uow,
            events_pb2.SessionEnded,
            session,
            started_at=life.started_at,
            ended_at=life.ended_at,
            waiting_seconds=durations.waiting,
            live_seconds=durations.live,
            total_seconds=durations.total,
            participants=participants_of(rows),
            ended_by=ENDED_BY_TO_PROTO[life.ended_by],
        )
    elif fact is Fact.NOSHOW and life.ended_at and life.missing_side:
        waited_from = life.waiting_since or life.first_joined_at or life.ended_at
        await _record(
            uow,
            events_pb2.SessionNoShow,
            session,
            scheduled_start=life.scheduled_start,
            declared_at=life.ended_at,
            missing_side=MISSING_TO_PROTO[life.missing_side],
            waited_seconds=int((life.ended_at - waited_from).total_seconds()),
        )


async def _record(uow: UnitOfWork, message_type: type, session: Session, **fields: object) -> None:
    converted = {k: timestamp(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    await uow.record(event(message_type, session, **converted), subject=str(session.session_id))
