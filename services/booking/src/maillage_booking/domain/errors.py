"""Rule violations, each naming the offending field and the reason (mapped to 4xx by the API)."""

from __future__ import annotations


class DomainError(Exception):
    """A request breaks a rule; `field` and `reason` end up in the problem document."""

    status = 422
    title = "Invalid request"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFoundError(DomainError):
    """The object does not exist (or belongs to another site)."""

    status = 404
    title = "Not found"


class ConflictError(DomainError):
    """The request collides with the current state (slot taken, already accepted...)."""

    status = 409
    title = "Conflict"
