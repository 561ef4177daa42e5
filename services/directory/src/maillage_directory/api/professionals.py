"""Professionals (requis): create, read, replace, deactivate, history."""

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
from maillage_directory.api.schemas import (
    ChangeRead,
    ProfessionalCreate,
    ProfessionalRead,
    ProfessionalUpdate,
    professional_read,
)
from maillage_directory.use_cases import aggregates
from maillage_directory.use_cases.aggregates import PROFESSIONAL

router = APIRouter(prefix="/professionals", tags=["professionals"], responses=PROBLEMS)

Manager = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE)]
Editor = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE, Role.RESPONDER)]


@router.post("", status_code=201)
async def create_professional(
    body: ProfessionalCreate, caller: Manager, uow: UnitOfWorkDep, response: Response
) -> ProfessionalRead:
    with domain_errors():
        stored = await aggregates.create(uow, PROFESSIONAL, body, actor=caller.subject)
    set_etag(response, stored.version)
    response.headers["Location"] = f"/professionals/{stored.id}"
    return professional_read(stored, private=True)


@router.get("/{professional_id}", dependencies=[public()])
async def read_professional(
    professional_id: uuid.UUID, caller: OptionalCaller, uow: UnitOfWorkDep, response: Response
) -> ProfessionalRead:
    with domain_errors():
        stored = await aggregates.get(uow, PROFESSIONAL, professional_id)
    set_etag(response, stored.version)
    return professional_read(stored, private=sees_private_fields(caller))


@router.put("/{professional_id}")
async def replace_professional(
    professional_id: uuid.UUID,
    body: ProfessionalUpdate,
    caller: Editor,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> ProfessionalRead:
    with domain_errors():
        if Role.RESPONDER in caller.roles and not caller.has_any(
            frozenset({Role.COORDINATOR, Role.SERVICE})
        ):
            current = await aggregates.get(uow, PROFESSIONAL, professional_id)
            if caller.rpps is None or current.data["rpps"] != caller.rpps:
                raise Problem(403, "Forbidden", "responders may only edit their own record")
        stored = await aggregates.replace_fields(
            uow,
            PROFESSIONAL,
            professional_id,
            body,
            expected_version=version,
            actor=caller.subject,
        )
    set_etag(response, stored.version)
    return professional_read(stored, private=True)


@router.post("/{professional_id}/deactivate")
async def deactivate_professional(
    professional_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> ProfessionalRead:
    return await _set_active(professional_id, False, caller, version, uow, response)


@router.post("/{professional_id}/reactivate")
async def reactivate_professional(
    professional_id: uuid.UUID,
    caller: Manager,
    version: ExpectedVersion,
    uow: UnitOfWorkDep,
    response: Response,
) -> ProfessionalRead:
    return await _set_active(professional_id, True, caller, version, uow, response)


async def _set_active(
    professional_id: uuid.UUID,
    active: bool,
    caller: Principal,
    version: int,
    uow: UnitOfWorkDep,
    response: Response,
) -> ProfessionalRead:
    with domain_errors():
        stored = await aggregates.set_active(
            uow,
            PROFESSIONAL,
            professional_id,
            active,
            expected_version=version,
            actor=caller.subject,
        )
    set_etag(response, stored.version)
    return professional_read(stored, private=True)


@router.get("/{professional_id}/history")
async def professional_history(
    professional_id: uuid.UUID, caller: Manager, uow: UnitOfWorkDep
) -> list[ChangeRead]:
    with domain_errors():
        records = await aggregates.history(uow, PROFESSIONAL, professional_id)
    return [ChangeRead.of(record) for record in records]
