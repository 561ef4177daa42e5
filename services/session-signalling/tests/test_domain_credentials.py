"""Join-token lifetimes, TURN REST credentials, quality levels, flood control (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from maillage_session_signalling.domain.credentials import (
    CredentialError,
    join_token_expiry,
    participant_id,
    turn_credential,
    verify_turn_credential,
)
from maillage_session_signalling.domain.flow import TokenBucket
from maillage_session_signalling.domain.lifecycle import Role
from maillage_session_signalling.domain.quality import (
    LinkStats,
    QualityLevel,
    Verdict,
    preflight_verdict,
    quality_level,
)
from maillage_session_signalling.domain.session import InvalidSessionError, Session, SessionContext

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
END = NOW + timedelta(minutes=30)
GRACE = timedelta(minutes=15)
SESSION = uuid.uuid4()


def test_join_token_never_outlives_session_end_plus_grace() -> None:
    assert join_token_expiry(NOW, END, GRACE, timedelta(hours=4)) == END + GRACE
    assert join_token_expiry(NOW, END, GRACE, timedelta(minutes=5)) == NOW + timedelta(minutes=5)
    with pytest.raises(CredentialError):
        join_token_expiry(END + GRACE, END, GRACE, timedelta(hours=4))


def test_participant_id_is_stable_per_person_and_role() -> None:
    assert participant_id(SESSION, Role.PATIENT, "kiosk-1") == participant_id(
        SESSION, Role.PATIENT, "kiosk-1"
    )
    assert participant_id(SESSION, Role.PATIENT, "kiosk-1") != participant_id(
        SESSION, Role.ASSISTANT, "kiosk-1"
    )
    assert participant_id(SESSION, Role.PATIENT, "kiosk-1") != participant_id(
        uuid.uuid4(), Role.PATIENT, "kiosk-1"
    )


def test_turn_credential_follows_the_turn_rest_api() -> None:
    credential = turn_credential("s3cret", SESSION, NOW, timedelta(hours=1), END + GRACE)
    expiry, _, session = credential.username.partition(":")
    assert session == str(SESSION)
    assert int(expiry) == int((END + GRACE).timestamp())
    expected = base64.b64encode(
        hmac.new(b"s3cret", credential.username.encode(), hashlib.sha1).digest()
    ).decode()
    assert credential.credential == expected


def test_turn_credential_is_refused_when_expired_forged_or_for_another_session() -> None:
    credential = turn_credential("s3cret", SESSION, NOW, timedelta(hours=1), END + GRACE)
    assert verify_turn_credential(
        "s3cret", credential.username, credential.credential, SESSION, NOW
    )
    later = END + GRACE + timedelta(seconds=1)
    user, password = credential.username, credential.credential
    assert not verify_turn_credential("s3cret", user, password, SESSION, later)
    assert not verify_turn_credential("other", user, password, SESSION, NOW)
    assert not verify_turn_credential("s3cret", user, password, uuid.uuid4(), NOW)
    assert not verify_turn_credential(
        "s3cret", user, ("B" if password[0] == "A" else "A") + password[1:], SESSION, NOW
    )


def test_no_turn_credential_after_the_session() -> None:
    with pytest.raises(CredentialError):
        turn_credential("s3cret", SESSION, END + GRACE, timedelta(hours=1), END + GRACE)


@pytest.mark.parametrize(
    ("stats", "level", "verdict"),
    [
        (LinkStats(40, 5, 0.0, 2000), QualityLevel.EXCELLENT, Verdict.GOOD),
        (LinkStats(200, 30, 0.02, 800), QualityLevel.GOOD, Verdict.GOOD),
        (LinkStats(500, 80, 0.1, 400), QualityLevel.POOR, Verdict.POOR),
        (LinkStats(40, 5, 0.0, 100), QualityLevel.EXCELLENT, Verdict.UNUSABLE),
        (LinkStats(40, 5, 0.8, 900), QualityLevel.LOST, Verdict.UNUSABLE),
        (LinkStats(0, 0, 0.0, 0), QualityLevel.LOST, Verdict.UNUSABLE),
    ],
)
def test_quality_level_and_verdict(stats: LinkStats, level: QualityLevel, verdict: Verdict) -> None:
    assert quality_level(stats) is level
    assert preflight_verdict(stats) is verdict


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket.full(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)
    assert not bucket.take(0.1)


def test_session_requires_aware_ordered_times_and_gets_an_unguessable_room() -> None:
    context = SessionContext(site_id="site-1")
    with pytest.raises(InvalidSessionError):
        Session.schedule(context, NOW.replace(tzinfo=None), END)
    with pytest.raises(InvalidSessionError) as error:
        Session.schedule(context, END, NOW)
    assert error.value.field == "scheduled_end"
    rooms = {Session.schedule(context, NOW, END).room_id for _ in range(50)}
    assert len(rooms) == 50
    assert all(len(room) >= 32 for room in rooms)
