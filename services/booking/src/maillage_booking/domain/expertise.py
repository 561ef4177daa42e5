"""Tele-expertise lifecycle: requested -> accepted -> answered | rejected -> closed."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from maillage_booking.domain.errors import ConflictError, DomainError


class ExpertiseStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    ANSWERED = "answered"
    REJECTED = "rejected"
    CLOSED = "closed"


_NEXT: dict[str, frozenset[ExpertiseStatus]] = {
    "accept": frozenset({ExpertiseStatus.REQUESTED}),
    "answer": frozenset({ExpertiseStatus.ACCEPTED}),
    "reject": frozenset({ExpertiseStatus.REQUESTED, ExpertiseStatus.ACCEPTED}),
    "close": frozenset(
        {
            ExpertiseStatus.REQUESTED,
            ExpertiseStatus.ACCEPTED,
            ExpertiseStatus.ANSWERED,
            ExpertiseStatus.REJECTED,
        }
    ),
}

ALLOWED_ATTACHMENT_TYPES = frozenset({"image/jpeg", "image/png", "application/pdf"})
_MAGIC = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "application/pdf": b"%PDF-",
}


def check_transition(status: ExpertiseStatus, action: str) -> None:
    if status not in _NEXT[action]:
        raise ConflictError("status", f"cannot {action} a tele-expertise that is {status}")


def is_overdue(
    status: ExpertiseStatus, requested_at: datetime, delay: timedelta, now: datetime
) -> bool:
    """Still waiting for an answer past the delay the requester asked for."""
    waiting = status in (ExpertiseStatus.REQUESTED, ExpertiseStatus.ACCEPTED)
    return waiting and now > requested_at + delay


def check_attachment(content_type: str, data: bytes, max_bytes: int) -> None:
    """Images or PDF only, within the size limit, and the bytes must be what they claim."""
    if content_type not in ALLOWED_ATTACHMENT_TYPES:
        raise DomainError("content_type", "attachments must be JPEG, PNG or PDF")
    if not data:
        raise DomainError("body", "the attachment is empty")
    if len(data) > max_bytes:
        raise DomainError("body", f"the attachment exceeds {max_bytes} bytes")
    if not data.startswith(_MAGIC[content_type]):
        raise DomainError("body", f"the content is not a {content_type} file")
