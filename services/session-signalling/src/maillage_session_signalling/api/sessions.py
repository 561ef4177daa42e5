"""Sessions over HTTP: ad hoc creation, reading, and participants' join tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request, status

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem, field_error
from maillage_session_signalling.api.schemas import (
    JoinTokenRead,
    ParticipantRead,
    SessionCreate,
    SessionRead,
    ice,
)
from maillage_session_signalling.db.repositories import SessionRepository
from maillage_session_signalling.domain.credentials import CredentialError
from maillage_session_signalling.domain.session import InvalidSessionError, Session, SessionContext
from maillage_session_signalling.settings import SessionSignallingSettings
from maillage_session_signalling.signalling.access import can_see, join_pass, participant_role
from maillage_session_signalling.signalling.tokens import JoinTokens
from maillage_session_signalling.use_cases.sessions import schedule_session

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

Coordinator = Annotated[Principal, requires(Role.COORDINATOR)]
Reader = Annotated[
    Principal, requires(Role.COORDINATOR, Role.KIOSK, Role.NURSE, Role.RESPONDER, Role.SERVICE)
]
Participant = Annotated[Principal, requires(Role.KIOSK, Role.NURSE, Role.RESPONDER)]


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
    tokens: JoinTokens = request.app.state.join_tokens
    try:
        granted = join_pass(caller, role, session, settings, datetime.now(UTC))
    except CredentialError as error:
        raise Problem(409, "Session closed", str(error)) from error
    return JoinTokenRead(
        token=tokens.issue(granted.grant),
        participant_id=granted.grant.participant_id,
        role=role.value,
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
