"""The session lifecycle as a pure state machine.

scheduled → waiting (patient side present) → admitted (by the responder) → live (media
negotiated) → ended; or noshow (a side missing after the grace period); or failed; or
revoked (the appointment was cancelled or rescheduled before anything happened).
Each transition returns the new `Lifecycle` and the facts the caller turns into events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum


class SessionState(StrEnum):
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    ADMITTED = "admitted"
    LIVE = "live"
    ENDED = "ended"
    NOSHOW = "noshow"
    FAILED = "failed"
    REVOKED = "revoked"


TERMINAL_STATES = frozenset(
    {SessionState.ENDED, SessionState.NOSHOW, SessionState.FAILED, SessionState.REVOKED}
)


class Role(StrEnum):
    """A participant's role in the room (mirrors `maillage.common.v1.ParticipantRole`)."""

    PATIENT = "patient"
    ASSISTANT = "assistant"
    RESPONDER = "responder"
    COMPANION = "companion"
    # Invited into a session by its responder or a coordinator (see `domain/invitation.py`).
    SPECIALIST = "specialist"
    INTERPRETER = "interpreter"


PATIENT_SIDE = frozenset({Role.PATIENT, Role.ASSISTANT, Role.COMPANION})
INVITED_ROLES = frozenset({Role.SPECIALIST, Role.INTERPRETER})


class Fact(StrEnum):
    PATIENT_WAITING = "patient_waiting"
    STARTED = "started"
    ENDED = "ended"
    NOSHOW = "noshow"
    FAILED = "failed"


class EndedBy(StrEnum):
    PATIENT = "patient"
    RESPONDER = "responder"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MissingSide(StrEnum):
    PATIENT = "patient"
    RESPONDER = "responder"
    BOTH = "both"


class LifecycleError(Exception):
    """A transition that the current state does not allow (message safe to show)."""


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a session stands and when each step happened (all datetimes aware, UTC)."""

    state: SessionState
    scheduled_start: datetime
    scheduled_end: datetime
    joined_roles: frozenset[Role] = field(default_factory=frozenset)
    first_joined_at: datetime | None = None
    waiting_since: datetime | None = None
    admitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: EndedBy | None = None
    missing_side: MissingSide | None = None

    @property
    def closed(self) -> bool:
        return self.state in TERMINAL_STATES

    def join(self, role: Role, now: datetime) -> tuple[Lifecycle, tuple[Fact, ...]]:
        """Someone connected; the patient side arriving opens the waiting room."""
        self._require_open()
        joined = replace(
            self,
            joined_roles=self.joined_roles | {role},
            first_joined_at=self.first_joined_at or now,
        )
        if role in PATIENT_SIDE and self.state is SessionState.SCHEDULED:
            return replace(joined, state=SessionState.WAITING, waiting_since=now), (
                Fact.PATIENT_WAITING,
            )
        return joined, ()

    def admit(self, by: Role, now: datetime) -> Lifecycle:
        """Only the responder admits, and only a waiting patient side."""
        self._require_open()
        if by is not Role.RESPONDER:
            raise LifecycleError("only the responder admits the patient")
        if self.state is not SessionState.WAITING:
            raise LifecycleError(f"nobody is waiting (session is {self.state})")
        return replace(self, state=SessionState.ADMITTED, admitted_at=now)

    def media_connected(self, now: datetime) -> tuple[Lifecycle, tuple[Fact, ...]]:
        """The first answer between admitted peers: the act begins (idempotent once live)."""
        if self.state is not SessionState.ADMITTED:
            return self, ()
        return replace(self, state=SessionState.LIVE, started_at=now), (Fact.STARTED,)

    def end(self, by: EndedBy, now: datetime) -> tuple[Lifecycle, tuple[Fact, ...]]:
        """Normal end of an admitted or live session (`bye`, or everyone left)."""
        self._require_open()
        if self.state not in (SessionState.ADMITTED, SessionState.LIVE):
            raise LifecycleError(f"a {self.state} session cannot end; it never started")
        started = self.started_at or self.admitted_at or now
        ended = replace(
            self, state=SessionState.ENDED, started_at=started, ended_at=now, ended_by=by
        )
        return ended, (Fact.ENDED,)

    def everyone_left(self, now: datetime) -> tuple[Lifecycle, tuple[Fact, ...]]:
        """The last participant left: an admitted/live session ends; others wait for no-show."""
        if self.state in (SessionState.ADMITTED, SessionState.LIVE):
            return self.end(EndedBy.SYSTEM, now)
        return self, ()

    def check_no_show(self, now: datetime, grace: timedelta) -> tuple[Lifecycle, tuple[Fact, ...]]:
        """After start + grace, a session still waiting for a side is a no-show."""
        if self.state not in (SessionState.SCHEDULED, SessionState.WAITING):
            return self, ()
        if now < self.scheduled_start + grace:
            return self, ()
        patient = bool(self.joined_roles & PATIENT_SIDE)
        responder = Role.RESPONDER in self.joined_roles
        if patient and not responder:
            missing = MissingSide.RESPONDER
        elif responder and not patient:
            missing = MissingSide.PATIENT
        elif not patient:
            missing = MissingSide.BOTH
        else:
            # Both came but the responder never admitted: the patient was left waiting.
            missing = MissingSide.RESPONDER
        return replace(self, state=SessionState.NOSHOW, ended_at=now, missing_side=missing), (
            Fact.NOSHOW,
        )

    def fail(self, now: datetime) -> tuple[Lifecycle, tuple[Fact, ...]]:
        self._require_open()
        return replace(self, state=SessionState.FAILED, ended_at=now), (Fact.FAILED,)

    def revoke(self, now: datetime) -> Lifecycle:
        """Cancellation or reschedule: a session not yet under way stops accepting joins."""
        if self.closed:
            return self
        if self.state in (SessionState.ADMITTED, SessionState.LIVE):
            raise LifecycleError("the session is under way")
        return replace(self, state=SessionState.REVOKED, ended_at=now)

    def durations(self) -> Durations:
        """Seconds waited, live and in total (0 where a step did not happen)."""
        return Durations(
            waiting=_seconds(self.waiting_since, self.started_at),
            live=_seconds(self.started_at, self.ended_at),
            total=_seconds(self.first_joined_at, self.ended_at),
        )

    def _require_open(self) -> None:
        if self.closed:
            raise LifecycleError(f"the session is {self.state}")


@dataclass(frozen=True, slots=True)
class Durations:
    waiting: int
    live: int
    total: int


def _seconds(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None or end < start:
        return 0
    return int((end - start).total_seconds())
