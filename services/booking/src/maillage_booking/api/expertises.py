"""Tele-expertise requests, their lifecycle and attachments."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from maillage.booking.v1 import events_pb2 as ev
from maillage_booking.api.appointments import actor_of
from maillage_booking.api.common import site_of, site_scope
from maillage_booking.api.deps import BlobStoreDep, SettingsDep, responder_id_of
from maillage_booking.api.schemas import ExpertiseAnswer, ExpertiseCreate, ExpertiseReject
from maillage_booking.db import repositories as repo
from maillage_booking.use_cases import expertises as uc
from maillage_booking.use_cases.patients import patient_ref_for_booking
from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_common.http.problems import Problem, field_error

router = APIRouter(prefix="/expertises", tags=["tele-expertise"])

Anyone = Annotated[Principal, requires(Role.NURSE, Role.RESPONDER, Role.COORDINATOR)]
Expert = Annotated[Principal, requires(Role.RESPONDER)]


async def _requester_id(caller: Principal, uow: UnitOfWorkDep) -> str:
    if caller.rpps:
        async with uow:
            row = await repo.responder_by_rpps(uow.session, caller.rpps)
        if row is not None:
            return str(row.id)
    return caller.subject


@router.post("", status_code=201)
async def request_expertise(
    body: ExpertiseCreate, uow: UnitOfWorkDep, caller: Anyone
) -> dict[str, Any]:
    """A requesting professional asks an expert (level 1 or 2, with a response delay)."""
    command = uc.RequestExpertise(
        site_id=site_of(caller, body.site_id),
        requester_id=await _requester_id(caller, uow),
        responder_id=body.responder_id,
        specialty_code=body.specialty_code,
        patient_ref=await patient_ref_for_booking(uow, body.patient_id),
        level=body.level,
        question=body.question,
        clinical_context=body.clinical_context,
        response_delay=timedelta(hours=body.response_delay_hours),
    )
    return await uc.request_expertise(uow, command)


@router.get("/{expertise_id}")
async def get_expertise(
    expertise_id: uuid.UUID, uow: UnitOfWorkDep, caller: Anyone
) -> dict[str, Any]:
    """The case with its status and `overdue` flag."""
    return await uc.read_expertise(uow, expertise_id, site_scope(caller))


@router.post("/{expertise_id}/accept")
async def accept(expertise_id: uuid.UUID, uow: UnitOfWorkDep, caller: Expert) -> dict[str, Any]:
    responder = await responder_id_of(caller, uow)
    return await uc.transition(uow, expertise_id, "accept", responder_id=responder)


@router.post("/{expertise_id}/answer")
async def answer(
    expertise_id: uuid.UUID, body: ExpertiseAnswer, uow: UnitOfWorkDep, caller: Expert
) -> dict[str, Any]:
    responder = await responder_id_of(caller, uow)
    return await uc.transition(
        uow, expertise_id, "answer", responder_id=responder, report=body.report
    )


@router.post("/{expertise_id}/reject")
async def reject(
    expertise_id: uuid.UUID, body: ExpertiseReject, uow: UnitOfWorkDep, caller: Expert
) -> dict[str, Any]:
    responder = await responder_id_of(caller, uow)
    reason = ev.RejectReason.Value(f"REJECT_REASON_{body.reason.upper()}")
    return await uc.transition(uow, expertise_id, "reject", responder_id=responder, reason=reason)


@router.post("/{expertise_id}/close")
async def close(expertise_id: uuid.UUID, uow: UnitOfWorkDep, caller: Anyone) -> dict[str, Any]:
    """Terminal: by the requester's side or the expert."""
    return await uc.transition(
        uow, expertise_id, "close", site_id=site_scope(caller), actor=actor_of(caller)
    )


@router.put("/{expertise_id}/attachments/{filename}", status_code=201)
async def add_attachment(
    expertise_id: uuid.UUID,
    filename: str,
    request: Request,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    store: BlobStoreDep,
    caller: Anyone,
    content_type: Annotated[str, Header()] = "application/octet-stream",
    content_length: Annotated[int | None, Header()] = None,
) -> dict[str, Any]:
    """Upload an image (JPEG, PNG) or a PDF as the raw request body."""
    limit = settings.attachment_max_bytes
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    data = await _body_within(request, limit)
    return await uc.add_attachment(
        uow,
        store,
        expertise_id,
        site_scope(caller),
        filename=filename,
        content_type=content_type.split(";")[0].strip(),
        data=data,
        max_bytes=settings.attachment_max_bytes,
    )


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Content too large",
        f"attachments are limited to {limit} bytes",
        errors=[field_error("body", "attachment too large")],
    )


async def _body_within(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes the limit (a chunked upload states no length)."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)


@router.get("/{expertise_id}/attachments/{attachment_id}")
async def get_attachment(
    expertise_id: uuid.UUID,
    attachment_id: uuid.UUID,
    uow: UnitOfWorkDep,
    store: BlobStoreDep,
    caller: Anyone,
) -> Response:
    media_type, data = await uc.read_attachment(
        uow, store, expertise_id, attachment_id, site_scope(caller)
    )
    return Response(data, media_type=media_type)
