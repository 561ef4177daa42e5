"""Who may join a session, as which role, with which ICE servers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from maillage_common.auth import Principal, Role
from maillage_session_signalling.domain.credentials import (
    access_deadline,
    join_token_expiry,
    participant_id,
    turn_credential,
)
from maillage_session_signalling.domain.invitation import Invitation
from maillage_session_signalling.domain.lifecycle import Role as SessionRole
from maillage_session_signalling.domain.session import Session
from maillage_session_signalling.settings import SessionSignallingSettings
from maillage_session_signalling.signalling.tokens import JoinGrant


def can_see(caller: Principal, session: Session) -> bool:
    """Coordinators see every session; site users their site's; responders their own."""
    if caller.has_any(frozenset({Role.COORDINATOR, Role.SERVICE})):
        return True
    return participant_role(caller, session) is not None


def participant_role(caller: Principal, session: Session) -> SessionRole | None:
    """The role `caller` takes in `session`, or None when they are not a participant."""
    ctx = session.context
    responder_ids = {caller.subject, caller.rpps}
    if Role.RESPONDER in caller.roles and ctx.responder_id and ctx.responder_id in responder_ids:
        return SessionRole.RESPONDER
    if caller.site_id is not None and caller.site_id == ctx.site_id:
        if Role.NURSE in caller.roles:
            return SessionRole.ASSISTANT
        if Role.KIOSK in caller.roles:
            return SessionRole.PATIENT
    return None


def may_invite(caller: Principal, session: Session) -> bool:
    """The session's responder and coordinators invite (and revoke) specialists/interpreters."""
    if Role.COORDINATOR in caller.roles:
        return True
    return participant_role(caller, session) is SessionRole.RESPONDER


@dataclass(frozen=True, slots=True)
class JoinPass:
    grant: JoinGrant
    ice_servers: list[dict[str, Any]]


def join_pass(
    caller: Principal,
    role: SessionRole,
    session: Session,
    settings: SessionSignallingSettings,
    now: datetime,
) -> JoinPass:
    grace = timedelta(seconds=settings.grace_seconds)
    expires_at = join_token_expiry(
        now,
        session.lifecycle.scheduled_end,
        grace,
        timedelta(seconds=settings.join_token_max_ttl_seconds),
    )
    grant = JoinGrant(
        session_id=session.session_id,
        room_id=session.room_id,
        participant_id=participant_id(session.session_id, role, caller.subject),
        role=role,
        professional_id=(caller.rpps or caller.subject) if role is SessionRole.RESPONDER else "",
        expires_at=expires_at,
    )
    return JoinPass(grant, ice_servers(session, settings, now))


def invitee_pass(
    invitation: Invitation, session: Session, settings: SessionSignallingSettings, now: datetime
) -> JoinPass:
    """The invitee's credential: bound to the invitation, which revocation closes."""
    expires_at = join_token_expiry(
        now,
        session.lifecycle.scheduled_end,
        timedelta(seconds=settings.grace_seconds),
        timedelta(seconds=settings.join_token_max_ttl_seconds),
    )
    specialist = invitation.role is SessionRole.SPECIALIST
    grant = JoinGrant(
        session_id=session.session_id,
        room_id=session.room_id,
        participant_id=invitation.participant_id,
        role=invitation.role,
        professional_id=invitation.invitee_id if specialist else "",
        expires_at=expires_at,
        invitation_id=invitation.invitation_id,
    )
    return JoinPass(grant, ice_servers(session, settings, now))


def ice_servers(
    session: Session, settings: SessionSignallingSettings, now: datetime
) -> list[dict[str, Any]]:
    """Configured STUN servers, plus TURN with REST credentials bound to this session."""
    servers: list[dict[str, Any]] = (
        [{"urls": list(settings.ice_servers)}] if settings.ice_servers else []
    )
    secret = settings.turn_secret.get_secret_value()
    if settings.turn_urls and secret:
        deadline = access_deadline(
            session.lifecycle.scheduled_end, timedelta(seconds=settings.grace_seconds)
        )
        credential = turn_credential(
            secret, session.session_id, now, timedelta(seconds=settings.turn_ttl_seconds), deadline
        )
        servers.append(
            {
                "urls": list(settings.turn_urls),
                "username": credential.username,
                "credential": credential.credential,
            }
        )
    return servers
