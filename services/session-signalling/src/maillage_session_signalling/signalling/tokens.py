"""Join tokens: short-lived JWTs bound to (session, room, participant, role).

Signed with a secret only session-signalling knows (HS256 is right here: the issuer is the
verifier; bearer tokens from the identity provider stay asymmetric).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from maillage_session_signalling.domain.lifecycle import Role

_ALGORITHM = "HS256"
_AUDIENCE = "maillage-signalling"


class InvalidJoinTokenError(Exception):
    """The join token cannot be trusted (reason safe to show)."""


@dataclass(frozen=True, slots=True)
class JoinGrant:
    session_id: uuid.UUID
    room_id: str
    participant_id: str
    role: Role
    professional_id: str
    expires_at: datetime
    # Set for invited specialists and interpreters: revoking it closes their access.
    invitation_id: uuid.UUID | None = None


class JoinTokens:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def issue(self, grant: JoinGrant) -> str:
        claims = {
            "aud": _AUDIENCE,
            "sub": grant.participant_id,
            "sid": str(grant.session_id),
            "room": grant.room_id,
            "role": grant.role.value,
            "pro": grant.professional_id,
            "exp": int(grant.expires_at.timestamp()),
            "iat": int(datetime.now(UTC).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if grant.invitation_id is not None:
            claims["inv"] = str(grant.invitation_id)
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> JoinGrant:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"require": ["exp", "sub", "aud"]},
            )
            return JoinGrant(
                session_id=uuid.UUID(claims["sid"]),
                room_id=str(claims["room"]),
                participant_id=str(claims["sub"]),
                role=Role(claims["role"]),
                professional_id=str(claims.get("pro", "")),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                invitation_id=uuid.UUID(claims["inv"]) if claims.get("inv") else None,
            )
        except (jwt.PyJWTError, KeyError, ValueError) as error:
            raise InvalidJoinTokenError(f"invalid join token: {error}") from error
