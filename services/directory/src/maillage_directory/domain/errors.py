"""Domain errors: what the API maps to problem documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class InvalidValueError(ValueError):
    """A single value breaks a rule; the caller knows which field it came from."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


class ValidationFailedError(Exception):
    """One or more fields break the directory's rules (maps to 422)."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = list(errors)

    @classmethod
    def single(cls, field: str, reason: str) -> ValidationFailedError:
        return cls([FieldError(field, reason)])


class NotFoundError(Exception):
    """The aggregate does not exist (or is invisible to the caller)."""


class ConflictError(Exception):
    """A uniqueness rule is broken (e.g. duplicate RPPS)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class VersionMismatchError(Exception):
    """If-Match named a version that is no longer current."""

    def __init__(self, current: int) -> None:
        super().__init__(f"current version is {current}")
        self.current = current
