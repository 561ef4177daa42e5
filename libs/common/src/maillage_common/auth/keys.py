"""Development signing keys and token minting.

Production tokens come from the identity provider (Keycloak, Pro Santé Connect); this
module exists so a developer, the tests and the demo can act as a kiosk, a nurse or a
responder. Keys are generated on the machine, never committed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from maillage_common.auth.principal import Role

_PRIVATE_FILE = "signing-key.jwk.json"
_JWKS_FILE = "jwks.json"


@dataclass(frozen=True, slots=True)
class DevSigningKey:
    private_jwk_path: Path
    jwks_path: Path

    @property
    def jwks_url(self) -> str:
        return self.jwks_path.resolve().as_uri()


def ensure_dev_signing_key(directory: Path) -> DevSigningKey:
    """Create an ES256 key pair in `directory` unless one is already there."""
    key = DevSigningKey(directory / _PRIVATE_FILE, directory / _JWKS_FILE)
    if key.private_jwk_path.exists() and key.jwks_path.exists():
        return key
    directory.mkdir(parents=True, exist_ok=True)
    private_key = ec.generate_private_key(ec.SECP256R1())
    kid = uuid.uuid4().hex
    private_jwk = {**json.loads(ECAlgorithm.to_jwk(private_key)), "kid": kid, "alg": "ES256"}
    public_jwk = {
        **json.loads(ECAlgorithm.to_jwk(private_key.public_key())),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }
    _write_private(key.private_jwk_path, json.dumps(private_jwk))
    key.jwks_path.write_text(json.dumps({"keys": [public_jwk]}))
    return key


def _write_private(path: Path, content: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)


def mint_token(
    *,
    private_jwk_path: Path,
    role: Role,
    subject: str,
    issuer: str,
    audience: str,
    site_id: str | None = None,
    rpps: str | None = None,
    ttl_seconds: int = 3600,
) -> str:
    jwk = jwt.PyJWK.from_json(private_jwk_path.read_text())
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "roles": [role.value],
    }
    if site_id:
        claims["site_id"] = site_id
    if rpps:
        claims["rpps"] = rpps
    return jwt.encode(claims, jwk.key, algorithm="ES256", headers={"kid": jwk.key_id})
