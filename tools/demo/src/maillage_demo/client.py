"""Calling the platform as its users do: HTTP with bearer tokens minted like an IdP would."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from maillage_common.auth import Role
from maillage_common.auth.keys import mint_token

SERVICES = ("directory", "booking", "session-signalling", "telemetry", "statistics")
# Directory events reach the other services' read models asynchronously: a write that names
# a site, kiosk or responder they have not seen yet is retried for this long.
PROPAGATION_TIMEOUT_SECONDS = 60.0
_RETRY_PAUSE_SECONDS = 0.25


class DemoError(RuntimeError):
    """The platform answered something the demo cannot go on from."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Base URL of each service, by name."""

    urls: Mapping[str, str]

    def __getitem__(self, service: str) -> str:
        return self.urls[service]

    def websocket(self, service: str, path: str) -> str:
        return (
            self.urls[service].replace("http://", "ws://", 1).replace("https://", "wss://", 1)
            + path
        )


class Tokens:
    """Bearer tokens for each kind of user, signed with the platform's development key."""

    def __init__(self, private_jwk_path: Path, issuer: str, audience: str) -> None:
        self._key = private_jwk_path
        self._issuer = issuer
        self._audience = audience
        self._cache: dict[tuple[str, str, str | None, str | None], str] = {}

    def token(
        self, role: Role, subject: str, site_id: str | None = None, rpps: str | None = None
    ) -> str:
        cache_key = (role.value, subject, site_id, rpps)
        if cache_key not in self._cache:
            self._cache[cache_key] = mint_token(
                private_jwk_path=self._key,
                role=role,
                subject=subject,
                issuer=self._issuer,
                audience=self._audience,
                site_id=site_id,
                rpps=rpps,
                ttl_seconds=6 * 3600,
            )
        return self._cache[cache_key]

    def headers(
        self, role: Role, subject: str, site_id: str | None = None, rpps: str | None = None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject, site_id, rpps)}"}

    def coordinator(self) -> dict[str, str]:
        return self.headers(Role.COORDINATOR, "demo-coordinator")

    def nurse(self, site_id: str) -> dict[str, str]:
        return self.headers(Role.NURSE, f"nurse-{site_id}", site_id=site_id)

    def kiosk(self, kiosk_id: str, site_id: str) -> dict[str, str]:
        return self.headers(Role.KIOSK, kiosk_id, site_id=site_id)

    def responder(self, professional_id: str, rpps: str) -> dict[str, str]:
        return self.headers(Role.RESPONDER, professional_id, rpps=rpps)


def _describe(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.path} → {response.status_code}: {response.text[:500]}"


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    expect: tuple[int, ...] = (200, 201, 202),
    retry_on: tuple[int, ...] = (),
    give_up_after: float = PROPAGATION_TIMEOUT_SECONDS,
) -> httpx.Response:
    """One request; answers in `retry_on` (a read model not caught up yet) and 503 (a service
    briefly away) are retried for `give_up_after` seconds; anything else unexpected is a
    DemoError."""
    deadline = asyncio.get_running_loop().time() + give_up_after
    while True:
        try:
            answer = await client.request(method, url, headers=headers, json=json, params=params)
        except httpx.TransportError as error:
            failure = f"{method} {url}: {error!r}"
        else:
            if answer.status_code in expect:
                return answer
            failure = _describe(answer)
            if answer.status_code not in (*retry_on, 503):
                raise DemoError(failure)
        if asyncio.get_running_loop().time() > deadline:
            raise DemoError(f"gave up after {give_up_after:.0f}s: {failure}")
        await asyncio.sleep(_RETRY_PAUSE_SECONDS)
