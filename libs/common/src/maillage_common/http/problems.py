"""RFC 9457 problem+json for every error a service returns.

Validation errors name each field and the reason; infrastructure outages answer 503
quickly; nothing unexpected leaks details (500 with an opaque id logged server-side).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = structlog.get_logger(__name__)


class Problem(Exception):  # noqa: N818 - the RFC's own name reads better than ProblemError
    """Raise from a route or a use case to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        type_: str = "about:blank",
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extensions = extensions

    def document(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


def field_error(field: str, reason: str) -> dict[str, str]:
    """One entry of `errors`: a JSON pointer-ish dotted path and the reason."""
    return {"field": field, "reason": reason}


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    return JSONResponse(
        problem.document(request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def _location(loc: Sequence[int | str]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        return ".".join(parts[1:]) or parts[0]
    return ".".join(parts)


async def _on_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return problem_response(error, request)


async def _on_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [field_error(_location(item["loc"]), item["msg"]) for item in error.errors()]
    problem = Problem(422, "Invalid request", "some fields are invalid", errors=errors)
    return problem_response(problem, request)


async def _on_http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    problem = Problem(
        error.status_code, _reason(error.status_code), str(error.detail), headers=headers
    )
    return problem_response(problem, request)


async def _on_database_unavailable(request: Request, error: Exception) -> JSONResponse:
    _log.warning("database_unavailable", error=type(error).__name__)
    problem = Problem(
        503,
        "Service unavailable",
        "the database is unreachable; retry later",
        headers={"Retry-After": "5"},
    )
    return problem_response(problem, request)


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    _log.exception("unhandled_error", path=request.url.path)
    return problem_response(Problem(500, "Internal error", "an unexpected error occurred"), request)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    for unavailable in (OperationalError, PoolTimeoutError, ConnectionError, OSError):
        app.add_exception_handler(unavailable, _on_database_unavailable)
    app.add_exception_handler(DBAPIError, _on_dbapi_error)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_dbapi_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DBAPIError)
    if error.connection_invalidated:
        return await _on_database_unavailable(request, error)
    return await _on_unexpected(request, error)
