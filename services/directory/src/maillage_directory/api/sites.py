"""Sites (requérants): create, read, replace, deactivate, history.

Site users (nurses) may edit only their own site: another site reads as 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from maillage_common.auth import Principal, Role, public, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem
from maillage_directory.api.common import (
    PROBLEMS,
    ExpectedVersion,
    OptionalCaller,
    domain_errors,
    sees_private_fields,
    set_etag,
)
from maillage_directory.api.schemas import ChangeRead, SiteCreate, SiteRead, SiteUpdate, site_read
from maillage_directory.use_cases import aggregates
from maillage_directory.use_cases.aggregates import SITE

router = APIRouter(prefix="/sites", tags=["sites"], responses=PROBLEMS)

Manager = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE)]
Editor = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE, Role.NURSE)]


def ensure_site_scope(caller: Principal, site_id: uuid.UUID) -> None:
    """Site-bound callers only see their own site's objects (others read as 404)."""
    if caller.has_any(frozenset({Role.COORDINATOR, Role.SERVICE})):
        return
    if caller.site_id != str(site_id):
        raise Problem(404, "Not found", f"no site {site_id}")


@router.post("", status_code=201)
async def create_site(
    body: SiteCreate, caller: Manager, uow: UnitOfWorkDep, response: Response
) -> SiteRead:
    with domain_errors():
        stored = await aggregates.create(uow, SITE, body, actor=caller.subject)
    set_etag(response, stored.version)
    response.headers["Location"] = f"/sites/{stored.id}"
    return site_read(stored, private=True)


@router.get("/{site_id}", dependencies=[public()])
async def read_site(
    site_id: uuid.UUID, caller: OptionalCaller, uow: UnitOfWorkDep, response: Response
) -> SiteRead:
    with domain_errors():
        stored = await aggregates.get(uow, SITE, site_id)
    set_etag(response, stored.version)
    return site_read(stored, private=sees_private_fields(caller))


@router.put("/{site_id}")
async def replace_site(
    site_id: uuid.UUID,
    body: SiteUpdate,
    caller: Editor,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> SiteRead:
    ensure_site_scope(caller, site_id)
    with domain_errors():
        stored = await aggregates.replace_fields(
            uow, SITE, site_id, body, expected_version=version, actor=caller.subject
        )
    set_etag(response, stored.version)
    return site_read(stored, private=True)


@router.post("/{site_id}/deactivate")
async def deactivate_site(
    site_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> SiteRead:
    return await _set_active(site_id, False, caller, version, uow, response)


@router.post("/{site_id}/reactivate")
async def reactivate_site(
    site_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> SiteRead:
    return await _set_active(site_id, True, caller, version, uow, response)


async def _set_active(
    site_id: uuid.UUID,
    active: bool,
    caller: Principal,
    version: int,
    uow: UnitOfWorkDep,
    response: Response,
) -> SiteRead:
    with domain_errors():
        stored = await aggregates.set_active(
            uow, SITE, site_id, active, expected_version=version, actor=caller.subject
        )
    set_etag(response, stored.version)
    return site_read(stored, private=True)


@router.get("/{site_id}/history")
async def site_history(site_id: uuid.UUID, caller: Editor, uow: UnitOfWorkDep) -> list[ChangeRead]:
    ensure_site_scope(caller, site_id)
    with domain_errors():
        records = await aggregates.history(uow, SITE, site_id)
    return [ChangeRead.of(record) for record in records]
