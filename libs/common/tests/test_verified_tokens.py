"""The memory of verified bearer tokens: until `exp` or a maximum age, never a refused one."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from maillage_common.auth import Principal, Role
from maillage_common.auth.verified_tokens import VerifiedTokens
from maillage_common.auth.verifier import InvalidTokenError


class _CountingVerifier:
    def __init__(self) -> None:
        self.calls = 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        if token.startswith("bad"):
            raise InvalidTokenError("invalid token")
        return Principal(subject=token, roles=frozenset({Role.NURSE}), site_id=None, rpps=None)


def _token(exp: float) -> str:
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256'})}.{part({'sub': 'n', 'exp': exp})}.signature"


async def test_a_verified_token_is_remembered_until_it_expires() -> None:
    now = [1_000.0]
    verifier = _CountingVerifier()
    tokens = VerifiedTokens(verifier, max_age_seconds=300, clock=lambda: now[0])
    token = _token(1_010.0)
    await tokens.verify(token)
    await tokens.verify(token)
    assert verifier.calls == 1
    now[0] = 1_010.0  # expired: verified again (and refused there if it must be)
    await tokens.verify(token)
    assert verifier.calls == 2


async def test_a_remembered_token_is_verified_again_after_max_age() -> None:
    now = [1_000.0]
    verifier = _CountingVerifier()
    tokens = VerifiedTokens(verifier, max_age_seconds=60, clock=lambda: now[0])
    token = _token(10_000.0)
    await tokens.verify(token)
    now[0] = 1_059.0
    await tokens.verify(token)
    assert verifier.calls == 1
    now[0] = 1_060.0
    await tokens.verify(token)
    assert verifier.calls == 2


async def test_an_invalid_token_is_never_remembered_and_memory_is_bounded() -> None:
    verifier = _CountingVerifier()
    tokens = VerifiedTokens(verifier, max_entries=2, clock=lambda: 1_000.0)
    for _ in range(2):
        with pytest.raises(InvalidTokenError, match="invalid"):
            await tokens.verify("bad" + _token(10_000.0))
    assert verifier.calls == 2
    first, second, third = (_token(10_000.0 + i) for i in range(3))
    for token in (first, second, third):
        await tokens.verify(token)
    await tokens.verify(third)
    assert verifier.calls == 5
    await tokens.verify(first)  # the oldest was dropped to make room
    assert verifier.calls == 6
