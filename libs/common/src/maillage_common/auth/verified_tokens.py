"""A bounded memory of bearer tokens already verified, in front of the JWKS verifier.

Verifying an ES256 JWT (header and payload decoding, claim checks, the signature) cost more
CPU than the rest of a booking's own Python (booking's benchmark profile). A kiosk or a nurse
sends the same token with every request until it expires, so the first verification's result
is kept, keyed by the exact token string, until the earliest of
- the token's own `exp` (the verifier's leeway is not extended to remembered tokens),
- `max_age_seconds` after it was verified (as long as the verifier keeps a fetched JWKS, so
  a rotated-out key stops admitting its tokens as soon as it would without this memory).
Only successful verifications are remembered: an invalid token is verified (and refused)
every time. Bounded: the oldest entries are dropped first.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

from maillage_common.auth.principal import Principal
from maillage_common.auth.verifier import BearerVerifier


class VerifiedTokens:
    def __init__(
        self,
        verifier: BearerVerifier,
        *,
        max_entries: int = 10_000,
        max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        now = self._clock()
        remembered = self._entries.get(token)
        if remembered is not None:
            principal, until = remembered
            if now < until:
                return principal
            del self._entries[token]
        principal = await self._verifier.verify(token)  # raises for an invalid token
        until = min(_expiry(token), now + self._max_age)
        if until > now:
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[token] = (principal, until)
        return principal


def _expiry(token: str) -> float:
    """The `exp` of a token the verifier has just accepted (so well-formed, `exp` required)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])
