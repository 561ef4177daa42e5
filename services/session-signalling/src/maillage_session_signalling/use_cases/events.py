"""Builds the protobuf events of `maillage.session_signalling.v1` from a session."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from maillage.common.v1 import types_pb2
from maillage.session_signalling.v1 import events_pb2
from maillage_session_signalling.domain.lifecycle import EndedBy, MissingSide, Role
from maillage_session_signalling.domain.session import Session

M = TypeVar("M", bound=Message)

ROLE_TO_PROTO = {
    Role.PATIENT: types_pb2.PARTICIPANT_ROLE_PATIENT,
    Role.ASSISTANT: types_pb2.PARTICIPANT_ROLE_ASSISTANT,
    Role.RESPONDER: types_pb2.PARTICIPANT_ROLE_RESPONDER,
    Role.COMPANION: types_pb2.PARTICIPANT_ROLE_COMPANION,
    Role.SPECIALIST: types_pb2.PARTICIPANT_ROLE_SPECIALIST,
    Role.INTERPRETER: types_pb2.PARTICIPANT_ROLE_INTERPRETER,
}
ENDED_BY_TO_PROTO = {
    EndedBy.PATIENT: events_pb2.ENDED_BY_PATIENT,
    EndedBy.RESPONDER: events_pb2.ENDED_BY_RESPONDER,
    EndedBy.ASSISTANT: events_pb2.ENDED_BY_ASSISTANT,
    EndedBy.SYSTEM: events_pb2.ENDED_BY_SYSTEM,
}
MISSING_TO_PROTO = {
    MissingSide.PATIENT: types_pb2.NO_SHOW_SIDE_PATIENT,
    MissingSide.RESPONDER: types_pb2.NO_SHOW_SIDE_RESPONDER,
    MissingSide.BOTH: types_pb2.NO_SHOW_SIDE_BOTH,
}


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def participant(participant_id: str, role: Role, professional_id: str = "") -> Any:
    return events_pb2.Participant(
        participant_id=participant_id, role=ROLE_TO_PROTO[role], professional_id=professional_id
    )


def participants_of(rows: Iterable[Mapping[str, Any]]) -> list[Any]:
    return [participant(r["participant_id"], Role(r["role"]), r["professional_id"]) for r in rows]


def event(message_type: type[M], session: Session, **fields: Any) -> M:
    """`message_type` with the shared context (fields 1-11) filled from `session`."""
    ctx = session.context
    origin: dict[str, str] = {}
    if ctx.appointment_id:
        origin["appointment_id"] = ctx.appointment_id
    elif ctx.consultation_id:
        origin["consultation_id"] = ctx.consultation_id
    return message_type(
        session_id=str(session.session_id),
        site_id=ctx.site_id,
        responder_id=ctx.responder_id,
        specialty_code=ctx.specialty_code,
        act=ctx.act,
        departement=ctx.departement,
        mode=ctx.mode,
        assistance=ctx.assistance,
        resource_id=ctx.resource_id,
        **origin,
        **fields,
    )
