"""Sessions and participants in PostgreSQL. Repositories never commit."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_session_signalling.db.tables import INVITATIONS, PARTICIPANTS, SESSIONS
from maillage_session_signalling.domain.invitation import Invitation
from maillage_session_signalling.domain.lifecycle import (
    EndedBy,
    Lifecycle,
    MissingSide,
    Role,
    SessionState,
)
from maillage_session_signalling.domain.session import Session, SessionContext


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._db = session

    async def add(self, session: Session) -> None:
        await self._db.execute(insert(SESSIONS).values(**_row(session)))

    async def get(self, session_id: uuid.UUID, *, for_update: bool = False) -> Session | None:
        query = select(SESSIONS).where(SESSIONS.c.session_id == session_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).mappings().first()
        return _session(row) if row else None

    async def active_for_appointment(
        self, appointment_id: str, *, for_update: bool = True
    ) -> Session | None:
        query = select(SESSIONS).where(
            SESSIONS.c.appointment_id == appointment_id,
            SESSIONS.c.state != SessionState.REVOKED.value,
        )
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).mappings().first()
        return _session(row) if row else None

    async def save(self, session: Session) -> None:
        values = _row(session)
        await self._db.execute(
            update(SESSIONS)
            .where(SESSIONS.c.session_id == session.session_id)
            .values({k: v for k, v in values.items() if k not in _IMMUTABLE})
        )

    async def due_for_no_show(self, before: datetime, limit: int = 100) -> list[uuid.UUID]:
        query = (
            select(SESSIONS.c.session_id)
            .where(
                SESSIONS.c.state.in_([SessionState.SCHEDULED.value, SessionState.WAITING.value]),
                SESSIONS.c.scheduled_start <= before,
            )
            .limit(limit)
        )
        return list((await self._db.execute(query)).scalars())

    async def participant_joined(
        self,
        session_id: uuid.UUID,
        participant_id: str,
        role: Role,
        professional_id: str,
        at: datetime,
    ) -> None:
        statement = pg_insert(PARTICIPANTS).values(
            session_id=session_id,
            participant_id=participant_id,
            role=role.value,
            professional_id=professional_id,
            joined_at=at,
        )
        # A participant who left and came back keeps their first join time.
        await self._db.execute(
            statement.on_conflict_do_update(
                index_elements=[PARTICIPANTS.c.session_id, PARTICIPANTS.c.participant_id],
                set_={"left_at": None, "leave_reason": None},
            )
        )

    async def participant_left(
        self, session_id: uuid.UUID, participant_id: str, at: datetime, reason: str
    ) -> None:
        await self._db.execute(
            update(PARTICIPANTS)
            .where(
                PARTICIPANTS.c.session_id == session_id,
                PARTICIPANTS.c.participant_id == participant_id,
                PARTICIPANTS.c.left_at.is_(None),
            )
            .values(left_at=at, leave_reason=reason)
        )

    async def set_quality(self, session_id: uuid.UUID, participant_id: str, level: str) -> None:
        await self._db.execute(
            update(PARTICIPANTS)
            .where(
                PARTICIPANTS.c.session_id == session_id,
                PARTICIPANTS.c.participant_id == participant_id,
            )
            .values(quality_level=level)
        )

    async def participants(self, session_id: uuid.UUID) -> Sequence[Mapping[str, Any]]:
        query = (
            select(PARTICIPANTS)
            .where(PARTICIPANTS.c.session_id == session_id)
            .order_by(PARTICIPANTS.c.joined_at)
        )
        return [dict(row) for row in (await self._db.execute(query)).mappings()]

    async def present(self, session_id: uuid.UUID, participant_id: str) -> bool:
        """Joined and not (yet) recorded as gone."""
        query = select(PARTICIPANTS.c.participant_id).where(
            PARTICIPANTS.c.session_id == session_id,
            PARTICIPANTS.c.participant_id == participant_id,
            PARTICIPANTS.c.left_at.is_(None),
        )
        return (await self._db.execute(query)).first() is not None

    async def add_invitation(self, invitation: Invitation) -> None:
        await self._db.execute(insert(INVITATIONS).values(**_invitation_row(invitation)))

    async def save_invitation(self, invitation: Invitation) -> None:
        await self._db.execute(
            update(INVITATIONS)
            .where(INVITATIONS.c.invitation_id == invitation.invitation_id)
            .values(revoked_by=invitation.revoked_by, revoked_at=invitation.revoked_at)
        )

    async def invitation(
        self, session_id: uuid.UUID, invitation_id: uuid.UUID, *, for_update: bool = False
    ) -> Invitation | None:
        query = select(INVITATIONS).where(
            INVITATIONS.c.session_id == session_id, INVITATIONS.c.invitation_id == invitation_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).mappings().first()
        return _invitation(row) if row else None

    async def invitations(self, session_id: uuid.UUID) -> list[Invitation]:
        query = (
            select(INVITATIONS)
            .where(INVITATIONS.c.session_id == session_id)
            .order_by(INVITATIONS.c.invited_at)
        )
        return [_invitation(row) for row in (await self._db.execute(query)).mappings()]

    async def active_invitations(self, session_id: uuid.UUID) -> int:
        query = select(func.count()).where(
            INVITATIONS.c.session_id == session_id, INVITATIONS.c.revoked_at.is_(None)
        )
        return int((await self._db.execute(query)).scalar_one())


def _invitation_row(invitation: Invitation) -> dict[str, Any]:
    return {
        "invitation_id": invitation.invitation_id,
        "session_id": invitation.session_id,
        "participant_id": invitation.participant_id,
        "role": invitation.role.value,
        "invitee_id": invitation.invitee_id,
        "invited_by": invitation.invited_by,
        "invited_at": invitation.invited_at,
        "revoked_by": invitation.revoked_by,
        "revoked_at": invitation.revoked_at,
    }


def _invitation(row: Any) -> Invitation:
    return Invitation(
        invitation_id=row["invitation_id"],
        session_id=row["session_id"],
        participant_id=row["participant_id"],
        role=Role(row["role"]),
        invitee_id=row["invitee_id"],
        invited_by=row["invited_by"],
        invited_at=row["invited_at"],
        revoked_by=row["revoked_by"],
        revoked_at=row["revoked_at"],
    )


_IMMUTABLE = frozenset({"session_id", "room_id", "created_at"})


def _row(session: Session) -> dict[str, Any]:
    ctx, life = session.context, session.lifecycle
    return {
        "session_id": session.session_id,
        "room_id": session.room_id,
        "appointment_id": ctx.appointment_id,
        "consultation_id": ctx.consultation_id,
        "site_id": ctx.site_id,
        "responder_id": ctx.responder_id,
        "specialty_code": ctx.specialty_code,
        "act": ctx.act,
        "departement": ctx.departement,
        "mode": ctx.mode,
        "assistance": ctx.assistance,
        "resource_id": ctx.resource_id,
        "scheduled_start": life.scheduled_start,
        "scheduled_end": life.scheduled_end,
        "state": life.state.value,
        "joined_roles": ",".join(sorted(role.value for role in life.joined_roles)),
        "first_joined_at": life.first_joined_at,
        "waiting_since": life.waiting_since,
        "admitted_at": life.admitted_at,
        "started_at": life.started_at,
        "ended_at": life.ended_at,
        "ended_by": life.ended_by.value if life.ended_by else None,
        "missing_side": life.missing_side.value if life.missing_side else None,
    }


def _session(row: Any) -> Session:
    roles = frozenset(Role(value) for value in row["joined_roles"].split(",") if value)
    lifecycle = Lifecycle(
        state=SessionState(row["state"]),
        scheduled_start=row["scheduled_start"],
        scheduled_end=row["scheduled_end"],
        joined_roles=roles,
        first_joined_at=row["first_joined_at"],
        waiting_since=row["waiting_since"],
        admitted_at=row["admitted_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        ended_by=EndedBy(row["ended_by"]) if row["ended_by"] else None,
        missing_side=MissingSide(row["missing_side"]) if row["missing_side"] else None,
    )
    context = SessionContext(
        site_id=row["site_id"],
        responder_id=row["responder_id"],
        specialty_code=row["specialty_code"],
        act=row["act"],
        departement=row["departement"],
        mode=row["mode"],
        assistance=row["assistance"],
        resource_id=row["resource_id"],
        appointment_id=row["appointment_id"],
        consultation_id=row["consultation_id"],
    )
    return Session(row["session_id"], row["room_id"], context, lifecycle)
