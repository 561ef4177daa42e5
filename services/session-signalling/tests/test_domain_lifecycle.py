"""The session lifecycle state machine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maillage_session_signalling.domain.lifecycle import (
    EndedBy,
    Fact,
    Lifecycle,
    LifecycleError,
    MissingSide,
    Role,
    SessionState,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def scheduled() -> Lifecycle:
    return Lifecycle(SessionState.SCHEDULED, T0, T0 + timedelta(minutes=30))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def live() -> Lifecycle:
    life, _ = scheduled().join(Role.PATIENT, at(-2))
    life, _ = life.join(Role.RESPONDER, at(0))
    life = life.admit(Role.RESPONDER, at(1))
    life, _ = life.media_connected(at(1.5))
    return life


def test_patient_side_arriving_opens_the_waiting_room() -> None:
    life, facts = scheduled().join(Role.PATIENT, at(-2))
    assert life.state is SessionState.WAITING
    assert facts == (Fact.PATIENT_WAITING,)
    assert life.waiting_since == at(-2)


def test_nurse_counts_as_patient_side_but_responder_does_not() -> None:
    life, facts = scheduled().join(Role.RESPONDER, at(0))
    assert (life.state, facts) == (SessionState.SCHEDULED, ())
    life, facts = life.join(Role.ASSISTANT, at(1))
    assert (life.state, facts) == (SessionState.WAITING, (Fact.PATIENT_WAITING,))


def test_second_patient_join_does_not_wait_again() -> None:
    life, _ = scheduled().join(Role.PATIENT, at(0))
    again, facts = life.join(Role.ASSISTANT, at(1))
    assert facts == ()
    assert again.waiting_since == at(0)


def test_only_the_responder_admits_and_only_a_waiting_room() -> None:
    life, _ = scheduled().join(Role.PATIENT, at(0))
    with pytest.raises(LifecycleError):
        life.admit(Role.PATIENT, at(1))
    with pytest.raises(LifecycleError):
        scheduled().admit(Role.RESPONDER, at(1))
    assert life.admit(Role.RESPONDER, at(1)).state is SessionState.ADMITTED


def test_media_connected_starts_the_act_once() -> None:
    life, _ = scheduled().join(Role.PATIENT, at(0))
    life = life.admit(Role.RESPONDER, at(1))
    started, facts = life.media_connected(at(2))
    assert (started.state, facts, started.started_at) == (SessionState.LIVE, (Fact.STARTED,), at(2))
    assert started.media_connected(at(3)) == (started, ())


def test_media_before_admission_does_not_start() -> None:
    life, _ = scheduled().join(Role.PATIENT, at(0))
    assert life.media_connected(at(1)) == (life, ())


def test_end_records_durations_and_who_ended() -> None:
    ended, facts = live().end(EndedBy.RESPONDER, at(21.5))
    assert facts == (Fact.ENDED,)
    assert ended.state is SessionState.ENDED
    assert ended.ended_by is EndedBy.RESPONDER
    durations = ended.durations()
    assert (durations.waiting, durations.live, durations.total) == (210, 1200, 1410)


def test_a_session_that_never_started_cannot_end() -> None:
    life, _ = scheduled().join(Role.PATIENT, at(0))
    with pytest.raises(LifecycleError):
        life.end(EndedBy.RESPONDER, at(5))


def test_everyone_leaving_ends_a_live_session_but_not_a_waiting_one() -> None:
    ended, facts = live().everyone_left(at(10))
    assert (ended.state, ended.ended_by, facts) == (
        SessionState.ENDED,
        EndedBy.SYSTEM,
        (Fact.ENDED,),
    )
    waiting, _ = scheduled().join(Role.PATIENT, at(0))
    assert waiting.everyone_left(at(1)) == (waiting, ())


@pytest.mark.parametrize(
    ("roles", "missing"),
    [
        ((Role.PATIENT,), MissingSide.RESPONDER),
        ((Role.RESPONDER,), MissingSide.PATIENT),
        ((), MissingSide.BOTH),
        ((Role.PATIENT, Role.RESPONDER), MissingSide.RESPONDER),
    ],
)
def test_no_show_after_grace_names_the_missing_side(
    roles: tuple[Role, ...], missing: MissingSide
) -> None:
    life = scheduled()
    for role in roles:
        life, _ = life.join(role, at(-1))
    early, facts = life.check_no_show(at(9), GRACE)
    assert (early, facts) == (life, ())
    noshow, facts = life.check_no_show(at(10), GRACE)
    assert (noshow.state, noshow.missing_side, facts) == (
        SessionState.NOSHOW,
        missing,
        (Fact.NOSHOW,),
    )


def test_no_show_never_hits_an_admitted_or_live_session() -> None:
    assert live().check_no_show(at(60), GRACE)[1] == ()


def test_closed_sessions_refuse_joins() -> None:
    ended, _ = live().end(EndedBy.RESPONDER, at(20))
    for closed in (ended, scheduled().revoke(at(0)), scheduled().fail(at(0))[0]):
        with pytest.raises(LifecycleError):
            closed.join(Role.PATIENT, at(21))


def test_revoke_refuses_a_session_under_way() -> None:
    with pytest.raises(LifecycleError):
        live().revoke(at(5))
    assert scheduled().revoke(at(0)).state is SessionState.REVOKED
