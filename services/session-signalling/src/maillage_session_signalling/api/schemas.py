"""HTTP schemas (pydantic v2)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_Id = Annotated[str, Field(min_length=1, max_length=64)]


class SessionCreate(BaseModel):
    """An ad hoc session opened by a coordinator."""

    model_config = ConfigDict(extra="forbid")
    site_id: _Id
    responder_id: _Id
    scheduled_start: AwareDatetime
    scheduled_end: AwareDatetime
    specialty_code: Annotated[str, Field(max_length=16)] = ""
    departement: Annotated[str, Field(max_length=8)] = ""
    resource_id: Annotated[str, Field(max_length=64)] = ""


class ParticipantRead(BaseModel):
    participant_id: str
    role: str
    joined_at: datetime
    left_at: datetime | None
    leave_reason: str | None
    quality_level: str | None


class SessionRead(BaseModel):
    session_id: uuid.UUID
    state: str
    site_id: str
    responder_id: str
    appointment_id: str | None
    consultation_id: str | None
    scheduled_start: datetime
    scheduled_end: datetime
    waiting_since: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    missing_side: str | None
    # End-of-session summary: seconds waited (waiting room → live), live, and in total.
    waiting_seconds: int
    live_seconds: int
    total_seconds: int
    participants: list[ParticipantRead] = []


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class JoinTokenRead(BaseModel):
    token: str
    participant_id: str
    role: str
    room_id: str
    websocket_path: str
    expires_at: datetime
    ice_servers: list[IceServer]


class PreflightOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["offer"]
    sdp: Annotated[str, Field(min_length=1, max_length=32_000)]


class PreflightAnswer(BaseModel):
    preflight_id: str
    type: Literal["answer"]
    sdp: str
    ice_servers: list[IceServer]


class PreflightReport(BaseModel):
    """What the client measured over the echo data channel."""

    model_config = ConfigDict(extra="forbid")
    rtt_ms: Annotated[float, Field(ge=0)]
    jitter_ms: Annotated[float, Field(ge=0)]
    loss_ratio: Annotated[float, Field(ge=0, le=1)]
    bitrate_kbps: Annotated[float, Field(ge=0)]


class PreflightVerdictRead(BaseModel):
    preflight_id: str
    rtt_ms: float
    jitter_ms: float
    loss_ratio: float
    bitrate_kbps: float
    level: str
    verdict: str
    echoed_messages: int


def ice(servers: list[dict[str, Any]]) -> list[IceServer]:
    return [IceServer(**server) for server in servers]


class InvitationCreate(BaseModel):
    """Invite a specialist (directory professional id) or an interpreter (their reference)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["specialist", "interpreter"]
    invitee_id: _Id


class InvitationRead(BaseModel):
    invitation_id: uuid.UUID
    session_id: uuid.UUID
    participant_id: str
    role: str
    invitee_id: str
    invited_by: str
    invited_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None


class InvitationIssued(InvitationRead):
    """The invitation and the invitee's join credential (hand it to them)."""

    join: JoinTokenRead
