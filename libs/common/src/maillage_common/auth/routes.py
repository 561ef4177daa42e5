"""Route-level access declarations as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from maillage_common.auth.principal import Principal, Role
from maillage_common.auth.verifier import BearerVerifier, InvalidTokenError
from maillage_common.http.problems import Problem

ACCESS_ATTRIBUTE = "maillage_access"
_bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


async def _verified(request: Request, credentials: HTTPAuthorizationCredentials) -> Principal:
    verifier: BearerVerifier = request.app.state.token_verifier
    try:
        return await verifier.verify(credentials.credentials)
    except InvalidTokenError as error:
        raise _unauthorized(str(error)) from error


def requires(*roles: Role) -> Any:
    """Admit a request only with a valid token holding one of `roles`."""
    admitted = frozenset(roles)

    async def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized("a bearer token is required")
        caller = await _verified(request, credentials)
        if not caller.has_any(admitted):
            raise Problem(403, "Forbidden", "this operation is not open to your role")
        return caller

    setattr(principal, ACCESS_ATTRIBUTE, sorted(admitted))
    return Depends(principal)


def public() -> Any:
    """Declare a route open without a token (only where the roadmap says so)."""

    async def anyone() -> None:
        return None

    setattr(anyone, ACCESS_ATTRIBUTE, ["public"])
    return Depends(anyone)


async def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """On a `public()` route: the caller when a token is sent (an invalid one is refused
    with 401), None for the public. The token only widens what the route shows."""
    return None if credentials is None else await _verified(request, credentials)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def _declares_access(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        call: Callable[..., Awaitable[Any]] | None = dependant.call
        if call is not None and hasattr(call, ACCESS_ATTRIBUTE):
            return True
        stack.extend(dependant.dependencies)
    return False


def undeclared_routes(app: FastAPI) -> list[str]:
    """Routes that forgot to say who may call them (a test asserts this is empty)."""
    return [
        f"{sorted(route.methods or ())} {route.path}"
        for route in app.routes
        if isinstance(route, APIRoute) and not _declares_access(route)
    ]
