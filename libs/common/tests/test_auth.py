"""Foundation test 5: bad tokens get 401, a valid token with the wrong role gets 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import FastAPI

from maillage_common.auth import Principal, Role, TokenVerifier, public, requires, undeclared_routes
from maillage_common.auth.keys import DevSigningKey, ensure_dev_signing_key, mint_token
from maillage_common.auth.verifier import InvalidTokenError, _principal_from
from maillage_common.http.problems import install_problem_handlers

ISSUER = "maillage-test"
AUDIENCE = "maillage"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DevSigningKey:
    return ensure_dev_signing_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def app(key: DevSigningKey) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = TokenVerifier(key.jwks_url, issuer=ISSUER, audience=AUDIENCE)

    @app.get("/nurse-only")
    async def nurse_only(caller: Annotated[Principal, requires(Role.NURSE)]) -> dict[str, str]:
        return {"subject": caller.subject, "site": caller.site_id or ""}

    @app.get("/open", dependencies=[public()])
    async def open_route() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def token(key: DevSigningKey, **overrides: object) -> str:
    role = overrides.pop("role", Role.NURSE)
    assert isinstance(role, Role)
    return mint_token(
        private_jwk_path=key.private_jwk_path,
        role=role,
        subject=str(overrides.pop("subject", "nurse-1")),
        issuer=str(overrides.pop("issuer", ISSUER)),
        audience=str(overrides.pop("audience", AUDIENCE)),
        site_id="site-42",
        ttl_seconds=int(overrides.pop("ttl_seconds", 600)),  # type: ignore[call-overload]
    )


async def call(app: FastAPI, bearer: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/nurse-only", headers=headers)


async def test_a_valid_nurse_token_is_admitted_with_its_site(
    app: FastAPI, key: DevSigningKey
) -> None:
    response = await call(app, token(key))
    assert response.status_code == 200
    assert response.json() == {"subject": "nurse-1", "site": "site-42"}


async def test_no_token_is_401_with_a_problem_document(app: FastAPI) -> None:
    response = await call(app, None)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


async def test_an_expired_token_is_401(app: FastAPI, key: DevSigningKey) -> None:
    response = await call(app, token(key, ttl_seconds=-120))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_a_tampered_token_is_401(app: FastAPI, key: DevSigningKey) -> None:
    header, payload, signature = token(key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["coordinator"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = await call(app, f"{header}.{forged}.{signature}")
    assert response.status_code == 401


async def test_an_unsigned_alg_none_token_is_401(app: FastAPI, key: DevSigningKey) -> None:
    kid = jwt.get_unverified_header(token(key))["kid"]
    now = int(time.time())
    claims = {
        "sub": "x",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "roles": ["nurse"],
    }
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": kid})
    response = await call(app, unsigned)
    assert response.status_code == 401
    assert "not accepted" in response.json()["detail"]


async def test_a_token_signed_by_another_key_is_401(app: FastAPI, tmp_path: Path) -> None:
    other = ensure_dev_signing_key(tmp_path)
    response = await call(app, token(other))
    assert response.status_code == 401


async def test_a_wrong_issuer_is_401(app: FastAPI, key: DevSigningKey) -> None:
    response = await call(app, token(key, issuer="https://evil.example"))
    assert response.status_code == 401
    assert "issuer" in response.json()["detail"].lower()


async def test_a_wrong_audience_is_401(app: FastAPI, key: DevSigningKey) -> None:
    response = await call(app, token(key, audience="another-platform"))
    assert response.status_code == 401


async def test_a_valid_token_with_the_wrong_role_is_403(app: FastAPI, key: DevSigningKey) -> None:
    response = await call(app, token(key, role=Role.KIOSK))
    assert response.status_code == 403
    assert response.json()["title"] == "Forbidden"


async def test_an_hmac_token_using_the_public_key_as_secret_is_401(
    app: FastAPI, key: DevSigningKey
) -> None:
    kid = jwt.get_unverified_header(token(key))["kid"]
    now = int(time.time())
    claims = {
        "sub": "x",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "roles": ["nurse"],
    }

    # Built by hand: PyJWT itself refuses to sign with a public key as HMAC secret.
    def segment(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{segment({'alg': 'HS256', 'kid': kid})}.{segment(claims)}"
    mac = hmac.new(key.jwks_path.read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert (await call(app, forged)).status_code == 401


def test_every_route_must_declare_who_may_call_it(app: FastAPI) -> None:
    assert undeclared_routes(app) == []

    @app.get("/forgotten")
    async def forgotten() -> None:
        return None

    assert undeclared_routes(app) == ["['GET'] /forgotten"]
    app.router.routes.pop()


def test_unknown_or_missing_roles_in_a_token_are_refused() -> None:
    with pytest.raises(InvalidTokenError, match="unknown role"):
        _principal_from({"sub": "x", "roles": ["superuser"]})
    with pytest.raises(InvalidTokenError, match="no roles"):
        _principal_from({"sub": "x", "roles": []})
