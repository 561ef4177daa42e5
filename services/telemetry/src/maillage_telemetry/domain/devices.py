"""Device credentials: what a connected device enrolled on a kiosk presents, and how it is checked.

A credential reads `mdc1.<credential id>.<secret>`: the id finds the enrolment row, the
secret (256 random bits, shown once at enrolment) is compared with its stored SHA-256.
At that entropy a fast hash is as safe as a slow one, and it costs nothing per upload.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

PREFIX = "mdc1"


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    credential_id: uuid.UUID
    secret: str

    @property
    def text(self) -> str:
        """The credential as the device presents it (never stored)."""
        return f"{PREFIX}.{self.credential_id}.{self.secret}"

    @property
    def secret_hash(self) -> bytes:
        return hash_secret(self.secret)


@dataclass(frozen=True, slots=True)
class PresentedCredential:
    credential_id: uuid.UUID
    secret: str

    def matches(self, stored_hash: bytes) -> bool:
        # Constant-time: the comparison must not leak how much of the hash matched.
        return hmac.compare_digest(hash_secret(self.secret), stored_hash)


def issue() -> IssuedCredential:
    return IssuedCredential(uuid.uuid4(), secrets.token_urlsafe(32))


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse(text: str) -> PresentedCredential | None:
    """The presented credential, or None when it is not shaped like one."""
    prefix, _, rest = text.strip().partition(".")
    credential_id, _, secret = rest.partition(".")
    if prefix != PREFIX or not secret:
        return None
    try:
        return PresentedCredential(uuid.UUID(credential_id), secret)
    except ValueError:
        return None
