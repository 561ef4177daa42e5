"""Patient identity at rest: encrypted with a key from the environment; events get a
pseudonymous reference derived with a keyed hash (stable per patient, not reversible)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

from cryptography.fernet import Fernet, InvalidToken


@dataclass(frozen=True, slots=True)
class Identity:
    """What identifies a patient (INS traits); never leaves this service unencrypted."""

    ins: str
    birth_name: str
    first_names: str
    birth_date: str
    sex: str
    birthplace_code: str


class IdentityVault:
    """Encrypts identities and derives pseudonyms with one secret key (a Fernet key)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())
        self._pseudonym_key = hashlib.sha256(b"maillage-patient-ref:" + key.encode()).digest()

    def encrypt(self, identity: Identity) -> bytes:
        return self._fernet.encrypt(json.dumps(asdict(identity)).encode())

    def decrypt(self, token: bytes) -> Identity:
        try:
            return Identity(**json.loads(self._fernet.decrypt(token)))
        except InvalidToken as error:
            raise ValueError("identity cannot be decrypted with this key") from error

    def digest(self, ins: str) -> str:
        """Keyed digest of the INS: finds a known patient without storing the INS in clear."""
        return hmac.new(self._pseudonym_key, b"ins:" + ins.encode(), hashlib.sha256).hexdigest()

    def patient_ref(self, ins: str) -> str:
        """The only patient reference that may appear in events, logs and metrics."""
        mac = hmac.new(self._pseudonym_key, b"ref:" + ins.encode(), hashlib.sha256).digest()
        return "pt_" + base64.b32encode(mac[:15]).decode().lower()
