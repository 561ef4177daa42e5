"""What every router shares: mapping rule violations to problems, caller scoping, enums."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from maillage.common.v1 import types_pb2 as types
from maillage_booking.db.blob_store import BlobStoreError
from maillage_booking.domain.errors import DomainError
from maillage_common.auth import Principal, Role
from maillage_common.http.problems import Problem, field_error, problem_response

ActName = Literal[
    "teleconsultation", "teleexpertise", "telesurveillance", "teleassistance", "telesoin"
]
AssistanceName = Literal["assisted", "simple"]

SITE_STAFF = (Role.KIOSK, Role.NURSE)


def act_code(name: str) -> int:
    return int(types.Act.Value(f"ACT_{name.upper()}"))


def assistance_code(name: str) -> int:
    return int(types.Assistance.Value(f"ASSISTANCE_{name.upper()}"))


def site_scope(caller: Principal) -> str | None:
    """The site a caller is confined to (None: may see every site)."""
    if caller.site_id and caller.has_any(frozenset(SITE_STAFF)):
        return caller.site_id
    return None


def site_of(caller: Principal, requested: str | None) -> str:
    """The token's site wins over a site sent in a body; others must name one."""
    scoped = site_scope(caller)
    if scoped is not None:
        return scoped
    if not requested:
        raise Problem(
            422,
            "Invalid request",
            "site_id is required",
            errors=[field_error("site_id", "required")],
        )
    return requested


def to_problem(error: DomainError) -> Problem:
    return Problem(
        error.status, error.title, error.reason, errors=[field_error(error.field, error.reason)]
    )


async def _on_domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return problem_response(to_problem(error), request)


async def _on_blob_store_error(request: Request, error: Exception) -> JSONResponse:
    # Not the caller's fault and worth retrying: like a database outage, a 503.
    problem = Problem(
        503,
        "Service unavailable",
        "attachment storage is unavailable",
        errors=[field_error("attachment", "storage unavailable")],
        headers={"Retry-After": "5"},
    )
    return problem_response(problem, request)


def install_error_mapping(app: FastAPI) -> None:
    """Rule violations raised by use cases become 4xx problem documents naming the field."""
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(BlobStoreError, _on_blob_store_error)
