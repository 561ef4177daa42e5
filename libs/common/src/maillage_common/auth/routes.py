"""Route-level access declarations as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from maillage_common.auth.principal import Principal, Role
from maillage_common.auth.verifier import InvalidTokenError, TokenVerifier
from maillage_common.http.problems import Problem

ACCESS_ATTRIBUTE = "maillage_access"
_bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def requires(*roles: Role) -> Any:
    """Admit a request only with a valid token holding one of `roles`."""
    admitted = frozenset(roles)

    async def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized("a bearer token is required")
        verifier: TokenVerifier = request.app.state.token_verifier
        try:
            caller = await verifier.verify(credentials.credentials)
        except InvalidTokenError as error:
            raise _unauthorized(str(error)) from error
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
