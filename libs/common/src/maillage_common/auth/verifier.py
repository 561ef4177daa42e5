from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import jwt

from maillage_common.auth.principal import Principal, Role

# Asymmetric algorithms only: accepting HS* with a public key, or `none`, would let
# anyone forge tokens.
ALLOWED_ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
_LEEWAY_SECONDS = 30


class BearerVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The token's principal; raises InvalidTokenError when it cannot be trusted."""
        ...


class InvalidTokenError(Exception):
    """The bearer token cannot be trusted (reason in the message, safe to show)."""


class TokenVerifier:
    """Verifies bearer JWTs against a JWKS given as a `file://` or `https://` URL."""

    def __init__(self, jwks_url: str, *, issuer: str, audience: str) -> None:
        self._issuer = issuer
        self._audience = audience
        parsed = urlparse(jwks_url)
        self._jwks_file = Path(unquote(parsed.path)) if parsed.scheme == "file" else None
        self._jwks_client = None if self._jwks_file else jwt.PyJWKClient(jwks_url, lifespan=300)
        self._file_keys: jwt.PyJWKSet | None = None

    async def verify(self, token: str) -> Principal:
        key = await self._signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(ALLOWED_ALGORITHMS),
                issuer=self._issuer,
                audience=self._audience,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidTokenError(str(error)) from error
        return _principal_from(claims)

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidTokenError(str(error)) from error
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError(f"algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidTokenError("token header has no key id (kid)")
        if self._jwks_client is not None:
            try:
                return await asyncio.to_thread(self._jwks_client.get_signing_key, kid)
            except jwt.PyJWTError as error:
                raise InvalidTokenError(str(error)) from error
        return self._file_key(kid)

    def _file_key(self, kid: str) -> jwt.PyJWK:
        assert self._jwks_file is not None
        if self._file_keys is None:
            self._file_keys = jwt.PyJWKSet.from_dict(json.loads(self._jwks_file.read_text()))
        try:
            return self._file_keys[kid]
        except KeyError as error:
            raise InvalidTokenError("unknown signing key") from error


def _principal_from(claims: dict[str, object]) -> Principal:
    raw_roles = claims.get("roles")
    if not isinstance(raw_roles, list) or not raw_roles:
        raise InvalidTokenError("token carries no roles")
    try:
        roles = frozenset(Role(str(role)) for role in raw_roles)
    except ValueError as error:
        raise InvalidTokenError("token carries an unknown role") from error
    site_id = claims.get("site_id")
    rpps = claims.get("rpps")
    return Principal(
        subject=str(claims["sub"]),
        roles=roles,
        site_id=str(site_id) if site_id else None,
        rpps=str(rpps) if rpps else None,
    )
