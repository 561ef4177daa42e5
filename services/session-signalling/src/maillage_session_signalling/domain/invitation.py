"""Invitations of a specialist or an interpreter into a session (pure, no I/O).

The responder of the session or a coordinator invites; the invitee gets a join credential
of their own (a participant id per invitation), and either may revoke it until the end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from maillage_session_signalling.domain.lifecycle import INVITED_ROLES, Role
from maillage_session_signalling.domain.session import InvalidSessionError


class InvitationError(Exception):
    """The invitation cannot be made now (message safe to show)."""


@dataclass(frozen=True, slots=True)
class Invitation:
    invitation_id: uuid.UUID
    session_id: uuid.UUID
    participant_id: str
    role: Role
    invitee_id: str
    invited_by: str
    invited_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(
        cls,
        session_id: uuid.UUID,
        role: Role,
        invitee_id: str,
        invited_by: str,
        now: datetime,
        *,
        active_invitations: int,
        max_invitations: int,
    ) -> Invitation:
        if role not in INVITED_ROLES:
            raise InvalidSessionError("role", "must be specialist or interpreter")
        if active_invitations >= max_invitations:
            raise InvitationError(f"at most {max_invitations} invitees per session")
        invitation_id = uuid.uuid4()
        return cls(
            invitation_id=invitation_id,
            session_id=session_id,
            # One participant per invitation: a revoked invitee cannot come back under a new one.
            participant_id=uuid.uuid5(session_id, f"{role}:invitation:{invitation_id}").hex[:16],
            role=role,
            invitee_id=invitee_id,
            invited_by=invited_by,
            invited_at=now,
        )

    def revoke(self, by: str, now: datetime) -> Invitation:
        """Idempotent: revoking twice keeps the first revocation."""
        if not self.active:
            return self
        return replace(self, revoked_by=by, revoked_at=now)
