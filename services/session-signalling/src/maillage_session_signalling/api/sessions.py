"""Sessions over HTTP: ad hoc creation, reading, and participants' join tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem, field_error
from maillage_session_signalling.api.schemas import (
    InvitationCreate,
    InvitationIssued,
    InvitationRead,
    JoinTokenRead,
    ParticipantRead,
    SessionCreate,
    SessionRead,
    ice,
)
from maillage_session_signalling.db.repositories import SessionRepository
from maillage_session_signalling.domain.credentials import CredentialError
from maillage_session_signalling.domain.invitation import Invitation, InvitationError
from maillage_session_signalling.domain.lifecycle import LifecycleError
from maillage_session_signalling.domain.lifecycle import Role as SessionRole
from maillage_session_signalling.domain.session import InvalidSessionError, Session, SessionContext
from maillage_session_signalling.settings import SessionSignallingSettings
from maillage_session_signalling.signalling.access import (
    JoinPass,
    can_see,
    invitee_pass,
    join_pass,
    may_invite,
    participant_role,
)
from maillage_session_signalling.signalling.server import SignallingServer
from maillage_session_signalling.signalling.tokens import JoinTokens
from maillage_session_signalling.use_cases import sessions as use_cases
from maillage_session_signalling.use_cases.sessions import schedule_session

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

Coordinator = Annotated[Principal, requires(Role.COORDINATOR)]
Reader = Annotated[
    Principal, requires(Role.COORDINATOR, Role.KIOSK, Role.NURSE, Role.RESPONDER, Role.SERVICE)
]
Participant = Annotated[Principal, requires(Role.KIOSK, Role.NURSE, Role.RESPONDER)]
Inviter = Annotated[Principal, requires(Role.COORDINATOR, Role.RESPONDER)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionRead)
async def create_session(
    body: SessionCreate, caller: Coordinator, uow: UnitOfWorkDep
) -> SessionRead:
    context = SessionContext(
        site_id=body.site_id,
        responder_id=body.responder_id,
        specialty_code=body.specialty_code,
        departement=body.departement,
        resource_id=body.resource_id,
    )
    try:
        session = await schedule_session(uow, context, body.scheduled_start, body.scheduled_end)
    except InvalidSessionError as error:
        raise Problem(
            422, "Invalid request", str(error), errors=[field_error(error.field, error.reason)]
        ) from error
    return _read(session, [])


@router.get("", response_model=SessionRead)
async def find_session_of_appointment(
    caller: Reader,
    uow: UnitOfWorkDep,
    appointment_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> SessionRead:
    """The active session of a booked appointment (or accepted on-demand request): how its
    kiosk, nurse and responder find what to join. Others read 404, as for a session id."""
    async with uow:
        repository = SessionRepository(uow.session)
        session = await repository.active_for_appointment(appointment_id, for_update=False)
        if session is None or not can_see(caller, session):
            raise _not_found()
        rows = await repository.participants(session.session_id)
    return _read(session, [ParticipantRead.model_validate(dict(row)) for row in rows])


@router.get("/{session_id}", response_model=SessionRead)
async def read_session(session_id: uuid.UUID, caller: Reader, uow: UnitOfWorkDep) -> SessionRead:
    async with uow:
        repository = SessionRepository(uow.session)
        session = await repository.get(session_id)
        if session is None or not can_see(caller, session):
            raise _not_found()
        rows = await repository.participants(session_id)
    return _read(session, [ParticipantRead.model_validate(dict(row)) for row in rows])


@router.post("/{session_id}/join-token", response_model=JoinTokenRead)
async def issue_join_token(
    session_id: uuid.UUID, caller: Participant, uow: UnitOfWorkDep, request: Request
) -> JoinTokenRead:
    """Only the session's participants: the site's kiosk and nurse, and its responder."""
    async with uow:
        session = await SessionRepository(uow.session).get(session_id)
    role = participant_role(caller, session) if session else None
    if session is None or role is None:
        raise _not_found()
    if session.lifecycle.closed:
        raise Problem(409, "Session closed", f"the session is {session.lifecycle.state}")
    settings: SessionSignallingSettings = request.app.state.signalling_settings
    try:
        granted = join_pass(caller, role, session, settings, datetime.now(UTC))
    except CredentialError as error:
        raise Problem(409, "Session closed", str(error)) from error
    return _join_read(granted, session, request)


@router.post(
    "/{session_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationIssued,
)
async def invite(
    session_id: uuid.UUID,
    body: InvitationCreate,
    caller: Inviter,
    uow: UnitOfWorkDep,
    request: Request,
) -> InvitationIssued:
    """The session's responder or a coordinator invites a specialist or an interpreter into a
    planned or running session; the answer carries the invitee's join credential."""
    await _inviter_session(caller, session_id, uow)
    settings: SessionSignallingSettings = request.app.state.signalling_settings
    now = datetime.now(UTC)
    try:
        session, invitation = await use_cases.invite(
            uow,
            session_id,
            SessionRole(body.role),
            body.invitee_id,
            caller.subject,
            now,
            max_invitations=settings.max_invitees,
        )
        granted = invitee_pass(invitation, session, settings, now)
    except (LifecycleError, CredentialError) as error:
        raise Problem(409, "Session closed", str(error)) from error
    except InvitationError as error:
        raise Problem(
            409, "Too many invitees", str(error), errors=[field_error("role", str(error))]
        ) from error
    return InvitationIssued(
        **_invitation_read(invitation).model_dump(), join=_join_read(granted, session, request)
    )


@router.get("/{session_id}/invitations", response_model=list[InvitationRead])
async def list_invitations(
    session_id: uuid.UUID, caller: Inviter, uow: UnitOfWorkDep
) -> list[InvitationRead]:
    """Who invited whom and when, and revocations (the responder and coordinators)."""
    await _inviter_session(caller, session_id, uow)
    return [_invitation_read(found) for found in await use_cases.invitations(uow, session_id)]


@router.delete("/{session_id}/invitations/{invitation_id}", response_model=InvitationRead)
async def revoke_invitation(
    session_id: uuid.UUID,
    invitation_id: uuid.UUID,
    caller: Inviter,
    uow: UnitOfWorkDep,
    request: Request,
) -> InvitationRead:
    """The invitee's credential stops working; if they are in the room they are removed
    (close 4003, `peer_left {reason: removed}`, ParticipantLeft reason removed)."""
    await _inviter_session(caller, session_id, uow)
    try:
        session, invitation, _ = await use_cases.revoke_invitation(
            uow, session_id, invitation_id, caller.subject, datetime.now(UTC)
        )
    except use_cases.InvitationNotFoundError as error:
        raise Problem(404, "Not found", "no such invitation") from error
    server: SignallingServer = request.app.state.signalling
    server.remove_participant(session.room_id, invitation.participant_id)
    return _invitation_read(invitation)


async def _inviter_session(caller: Principal, session_id: uuid.UUID, uow: UnitOfWorkDep) -> None:
    async with uow:
        session = await SessionRepository(uow.session).get(session_id)
    # Responders of other sessions learn nothing: the same 404 as an unknown session.
    if session is None or not may_invite(caller, session):
        raise _not_found()


def _invitation_read(invitation: Invitation) -> InvitationRead:
    return InvitationRead(
        invitation_id=invitation.invitation_id,
        session_id=invitation.session_id,
        participant_id=invitation.participant_id,
        role=invitation.role.value,
        invitee_id=invitation.invitee_id,
        invited_by=invitation.invited_by,
        invited_at=invitation.invited_at,
        revoked_by=invitation.revoked_by,
        revoked_at=invitation.revoked_at,
    )


def _join_read(granted: JoinPass, session: Session, request: Request) -> JoinTokenRead:
    tokens: JoinTokens = request.app.state.join_tokens
    return JoinTokenRead(
        token=tokens.issue(granted.grant),
        participant_id=granted.grant.participant_id,
        role=granted.grant.role.value,
        room_id=session.room_id,
        websocket_path=f"/v1/rooms/{session.room_id}/ws",
        expires_at=granted.grant.expires_at,
        ice_servers=ice(granted.ice_servers),
    )


def _not_found() -> Problem:
    return Problem(404, "Not found", "no such session")


def _read(session: Session, participants: list[ParticipantRead]) -> SessionRead:
    ctx, life = session.context, session.lifecycle
    durations = life.durations()
    return SessionRead(
        session_id=session.session_id,
        state=life.state.value,
        site_id=ctx.site_id,
        responder_id=ctx.responder_id,
        appointment_id=ctx.appointment_id,
        consultation_id=ctx.consultation_id,
        scheduled_start=life.scheduled_start,
        scheduled_end=life.scheduled_end,
        waiting_since=life.waiting_since,
        started_at=life.started_at,
        ended_at=life.ended_at,
        ended_by=life.ended_by.value if life.ended_by else None,
        missing_side=life.missing_side.value if life.missing_side else None,
        waiting_seconds=durations.waiting,
        live_seconds=durations.live,
        total_seconds=durations.total,
        participants=participants,
    )
