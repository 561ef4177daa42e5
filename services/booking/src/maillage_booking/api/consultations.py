"""On-demand requests, the responder inbox (poll or server-sent events) and accept."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from maillage_booking.api.common import act_code, assistance_code, site_of, site_scope
from maillage_booking.api.deps import SettingsDep, responder_id_of
from maillage_booking.api.schemas import ConsultationCreate
from maillage_booking.use_cases import consultations as uc
from maillage_booking.use_cases.patients import patient_ref_for_booking
from maillage_common.auth import Principal, Role, requires
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.http.dependencies import RuntimeDep, UnitOfWorkDep

router = APIRouter(tags=["on-demand"])

Requester = Annotated[Principal, requires(Role.KIOSK, Role.NURSE, Role.COORDINATOR)]
Responder = Annotated[Principal, requires(Role.RESPONDER)]


@router.post("/consultations", status_code=201)
async def request_consultation(
    body: ConsultationCreate, uow: UnitOfWorkDep, settings: SettingsDep, caller: Requester
) -> dict[str, Any]:
    """Ask for an immediate consultation; it is offered to responders on duty at once."""
    patient_ref = await patient_ref_for_booking(uow, body.patient_id)
    command = uc.RequestConsultation(
        site_id=site_of(caller, body.site_id),
        specialty_code=body.specialty_code,
        act=act_code(body.act),
        urgency=body.urgency,
        patient_ref=patient_ref,
        assistance=assistance_code(body.assistance),
        resource_id=body.resource_id,
    )
    return await uc.request_consultation(uow, command, settings)


@router.get("/consultations/{consultation_id}")
async def get_consultation(
    consultation_id: uuid.UUID,
    uow: UnitOfWorkDep,
    caller: Annotated[
        Principal, requires(Role.KIOSK, Role.NURSE, Role.COORDINATOR, Role.RESPONDER)
    ],
) -> dict[str, Any]:
    return await uc.read_consultation(uow, consultation_id, site_scope(caller))


@router.post("/consultations/{consultation_id}/accept")
async def accept_consultation(
    consultation_id: uuid.UUID, uow: UnitOfWorkDep, settings: SettingsDep, caller: Responder
) -> dict[str, Any]:
    """First accept wins; later ones get 409."""
    responder_id = await responder_id_of(caller, uow)
    return await uc.accept(uow, consultation_id, responder_id, settings)


@router.get("/responders/me/offers")
async def my_offers(uow: UnitOfWorkDep, caller: Responder) -> list[dict[str, Any]]:
    """The responder's inbox: open requests offered to them (poll it)."""
    return await uc.responder_inbox(uow, await responder_id_of(caller, uow))


@router.get("/responders/me/offers/stream")
async def my_offers_stream(
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    caller: Responder,
    interval: Annotated[float, Query(ge=0.2, le=30)] = 1.0,
    max_events: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> StreamingResponse:
    """Server-sent events: one `offer` event per new offer (the inbox, pushed)."""
    responder_id = await responder_id_of(caller, uow)
    stream = _offer_events(runtime.unit_of_work, responder_id, interval, max_events)
    return StreamingResponse(stream, media_type="text/event-stream")


async def _offer_events(
    new_uow: Any, responder_id: str, interval: float, max_events: int
) -> AsyncIterator[str]:
    seen: set[str] = set()
    sent = 0
    while sent < max_events:
        uow: UnitOfWork = new_uow()
        for offer in await uc.responder_inbox(uow, responder_id):
            if offer["id"] not in seen:
                seen.add(offer["id"])
                sent += 1
                yield f"event: offer\nid: {offer['id']}\ndata: {json.dumps(offer)}\n\n"
        # Polling the inbox: offers are committed by other requests, nothing to wait on.
        await asyncio.sleep(interval)
