"""The session aggregate: its immutable context and its lifecycle."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from maillage_session_signalling.domain.lifecycle import Lifecycle, SessionState


class InvalidSessionError(ValueError):
    """A session cannot be created from these values (field, reason)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What every session event repeats so consumers need no lookup (no patient data)."""

    site_id: str
    responder_id: str = ""
    specialty_code: str = ""
    act: int = 0
    departement: str = ""
    mode: int = 0
    assistance: int = 0
    resource_id: str = ""
    appointment_id: str | None = None
    consultation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    session_id: uuid.UUID
    room_id: str
    context: SessionContext
    lifecycle: Lifecycle

    @classmethod
    def schedule(cls, context: SessionContext, start: datetime, end: datetime) -> Session:
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidSessionError("scheduled_start", "must carry a timezone")
        if end <= start:
            raise InvalidSessionError("scheduled_end", "must be after scheduled_start")
        if not context.site_id:
            raise InvalidSessionError("site_id", "is required")
        return cls(
            session_id=uuid.uuid4(),
            room_id=new_room_id(),
            context=context,
            lifecycle=Lifecycle(SessionState.SCHEDULED, start, end),
        )

    def with_lifecycle(self, lifecycle: Lifecycle) -> Session:
        return replace(self, lifecycle=lifecycle)


def new_room_id() -> str:
    """192 random bits, URL-safe: room ids cannot be guessed or enumerated."""
    return secrets.token_urlsafe(24)
