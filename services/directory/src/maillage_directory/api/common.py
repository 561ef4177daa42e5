"""What every directory route shares: who sees private fields, ETags, domain errors → problems."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Header, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from maillage_common.auth import OptionalPrincipal, Principal, Role
from maillage_common.http.problems import PROBLEM_MEDIA_TYPE, Problem, field_error
from maillage_directory.domain.errors import (
    ConflictError,
    NotFoundError,
    ValidationFailedError,
    VersionMismatchError,
)

_bearer = HTTPBearer(auto_error=False)
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')
PRIVILEGED = frozenset({Role.COORDINATOR, Role.SERVICE, Role.NURSE, Role.RESPONDER})


OptionalCaller = OptionalPrincipal


def _problem_schema() -> dict[str, Any]:
    # Inlined (no component): FastAPI would also document a `model` as application/json.
    schema = ProblemDocument.model_json_schema()
    definitions = schema.pop("$defs")
    schema["properties"]["errors"]["anyOf"][0]["items"] = definitions["FieldProblem"]
    return schema


class FieldProblem(BaseModel):
    field: str
    reason: str


class ProblemDocument(BaseModel):
    """RFC 9457 problem details, as every error of the directory is answered."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = None


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": _SCHEMA}}}


_SCHEMA = _problem_schema()
# Declared on every router so the OpenAPI document tells clients (and the schemathesis
# fuzzing test) every status a route may answer, each as application/problem+json.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: _problem("the body is not decodable (e.g. not UTF-8)"),
    401: _problem("missing, expired or invalid bearer token"),
    403: _problem("the token's role may not do this"),
    404: _problem("no such resource (or not visible to this caller)"),
    409: _problem("duplicate identifier"),
    412: _problem("If-Match is stale (the current ETag is returned)"),
    422: _problem("invalid input, naming each field and reason"),
    428: _problem("If-Match is required"),
    503: _problem("the database is unavailable; retry after Retry-After"),
}


def sees_private_fields(caller: Principal | None) -> bool:
    """Phone numbers and MSSanté addresses are for authenticated platform users only."""
    return caller is not None and caller.has_any(PRIVILEGED)


def expected_version(if_match: Annotated[str | None, Header()] = None) -> int:
    """The version an update is based on, from If-Match (428 without it)."""
    if if_match is None:
        raise Problem(
            428,
            "Precondition required",
            "send If-Match with the ETag you read",
            errors=[field_error("If-Match", "required for updates")],
        )
    matched = _ETAG.match(if_match)
    if matched is None:
        raise Problem(
            412,
            "Precondition failed",
            "If-Match must be an ETag of this resource",
            errors=[field_error("If-Match", "not an ETag issued by the directory")],
        )
    return int(matched.group(1))


ExpectedVersion = Annotated[int, Depends(expected_version)]


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Translate the use cases' errors into problem documents."""
    try:
        yield
    except ValidationFailedError as error:
        raise Problem(
            422,
            "Invalid request",
            "some fields break the directory's rules",
            errors=[field_error(e.field, e.reason) for e in error.errors],
        ) from error
    except ConflictError as error:
        raise Problem(
            409, "Conflict", error.reason, errors=[field_error(error.field, error.reason)]
        ) from error
    except NotFoundError as error:
        raise Problem(404, "Not found", str(error)) from error
    except VersionMismatchError as error:
        raise Problem(
            412,
            "Precondition failed",
            "the resource changed since you read it; read it again",
            headers={"ETag": etag(error.current)},
        ) from error
