"""What every directory route shares: who sees private fields, ETags, domain errors → problems."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Header, Response
from fastapi.security import HTTPBearer

from maillage_common.auth import OptionalPrincipal, Principal, Role
from maillage_common.http.problems import Problem, field_error
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
