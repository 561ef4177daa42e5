"""Join-token lifetimes and TURN REST credentials (pure computations, no I/O).

TURN REST API (draft-uberti-behave-turn-rest, as coturn's `use-auth-secret`): the username
is `<expiry unix time>:<session id>` and the password is base64(HMAC-SHA1(secret, username)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from maillage_session_signalling.domain.lifecycle import Role


class CredentialError(Exception):
    """No credential can be issued now (message safe to show)."""


def access_deadline(scheduled_end: datetime, grace: timedelta) -> datetime:
    """Nothing issued for a session is valid past its end plus the grace period."""
    return scheduled_end + grace


def join_token_expiry(
    now: datetime, scheduled_end: datetime, grace: timedelta, max_ttl: timedelta
) -> datetime:
    """Short-lived, and never beyond the session's end + grace."""
    deadline = access_deadline(scheduled_end, grace)
    if now >= deadline:
        raise CredentialError("the session is over")
    return min(now + max_ttl, deadline)


def participant_id(session_id: uuid.UUID, role: Role, subject: str) -> str:
    """Stable per (session, role, person): a re-issued token identifies the same participant."""
    return uuid.uuid5(session_id, f"{role}:{subject}").hex[:16]


@dataclass(frozen=True, slots=True)
class TurnCredential:
    username: str
    credential: str
    expires_at: datetime


def turn_credential(
    secret: str, session_id: uuid.UUID, now: datetime, ttl: timedelta, deadline: datetime
) -> TurnCredential:
    expires_at = min(now + ttl, deadline)
    if expires_at <= now:
        raise CredentialError("the session is over")
    username = f"{int(expires_at.timestamp())}:{session_id}"
    return TurnCredential(username, turn_password(secret, username), expires_at)


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_turn_credential(
    secret: str, username: str, password: str, session_id: uuid.UUID, now: datetime
) -> bool:
    """What coturn checks: right HMAC, not expired, and (our addition) the right session."""
    expiry, _, session = username.partition(":")
    if not expiry.isdigit() or session != str(session_id) or int(expiry) <= now.timestamp():
        return False
    return hmac.compare_digest(turn_password(secret, username), password)
