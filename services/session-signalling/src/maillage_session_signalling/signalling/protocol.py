"""Signalling wire format, version 1: JSON text frames over one WebSocket per participant.

Every frame is an object with a `type` (the discriminator) and `v` (protocol version, 1).
Client → server: join, admit, offer, answer, candidate, restart, chat, quality, leave, bye.
Server → client: joined, peer_joined, peer_left, admitted, state, offer, answer, candidate,
restart, chat, bye, error. The server stamps `from` on relayed frames from the connection's
own identity; a `from` sent by a client is rejected (extra fields are forbidden).
`JSON_SCHEMA` is exported into the service README.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1
_ID = Annotated[str, Field(min_length=1, max_length=64)]
_SDP = Annotated[str, Field(min_length=1, max_length=32_000)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1


class Join(_Frame):
    """First frame of a connection: the join token from POST /v1/sessions/{id}/join-token."""

    type: Literal["join"]
    token: Annotated[str, Field(min_length=1, max_length=4096)]


class Admit(_Frame):
    """The responder lets the waiting patient side in."""

    type: Literal["admit"]


class Offer(_Frame):
    type: Literal["offer"]
    to: _ID
    sdp: _SDP


class Answer(_Frame):
    type: Literal["answer"]
    to: _ID
    sdp: _SDP


class Candidate(_Frame):
    """A trickled ICE candidate (`candidate: null` ends the gathering)."""

    type: Literal["candidate"]
    to: _ID
    candidate: Annotated[str, Field(max_length=1024)] | None
    sdp_mid: Annotated[str, Field(max_length=64)] | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=64)] | None = None


class Restart(_Frame):
    """Ask a peer to renegotiate with an ICE restart (after a rejoin)."""

    type: Literal["restart"]
    to: _ID


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=255)]
    media_type: Annotated[str, Field(min_length=1, max_length=127)]
    # Base64; the frame size limit bounds it (small files only).
    data: str


class Chat(_Frame):
    type: Literal["chat"]
    text: Annotated[str, Field(max_length=4000)] = ""
    attachment: Attachment | None = None


class Quality(_Frame):
    """A peer's periodic media stats (→ SessionQualityReported)."""

    type: Literal["quality"]
    rtt_ms: Annotated[float, Field(ge=0, le=60_000)]
    jitter_ms: Annotated[float, Field(ge=0, le=60_000)]
    loss_ratio: Annotated[float, Field(ge=0, le=1)]
    bitrate_kbps: Annotated[float, Field(ge=0, le=1_000_000)]


class Leave(_Frame):
    """This participant hangs up; the session goes on for the others."""

    type: Literal["leave"]


Failure = Literal["media_negotiation", "network", "device", "kiosk_unavailable"]


class Bye(_Frame):
    """End the session for everyone (the responder); from the server: the session ended.

    With `failure`, any participant declares the session failed (SessionFailed).
    """

    type: Literal["bye"]
    failure: Failure | None = None
    detail: Annotated[str, Field(max_length=200)] = ""


ClientMessage = Annotated[
    Join | Admit | Offer | Answer | Candidate | Restart | Chat | Quality | Leave | Bye,
    Field(discriminator="type"),
]
CLIENT_MESSAGES: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class PeerInfo(BaseModel):
    participant_id: str
    role: str


class Joined(_Frame):
    type: Literal["joined"]
    participant_id: str
    role: str
    session_id: str
    state: str
    peers: list[PeerInfo]
    rejoined: bool = False


class PeerJoined(_Frame):
    type: Literal["peer_joined"]
    participant_id: str
    role: str
    rejoined: bool = False


class PeerLeft(_Frame):
    type: Literal["peer_left"]
    participant_id: str
    reason: str


class StateChanged(_Frame):
    type: Literal["state"]
    state: str


class Relayed(_Frame):
    """offer/answer/candidate/restart/chat as delivered, with the server-stamped sender."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["offer", "answer", "candidate", "restart", "chat"]
    from_: str = Field(alias="from")


class Error(_Frame):
    type: Literal["error"]
    code: str
    message: str


ServerMessage = Annotated[
    Joined | PeerJoined | PeerLeft | StateChanged | Relayed | Bye | Error,
    Field(discriminator="type"),
]


def json_schema() -> dict[str, Any]:
    """The protocol as JSON Schema (both directions), for the README and clients."""
    return {
        "$id": "https://maillage.example/schemas/signalling/v1.json",
        "title": f"Maillage signalling protocol v{PROTOCOL_VERSION}",
        "client_to_server": CLIENT_MESSAGES.json_schema(),
        "server_to_client": TypeAdapter(ServerMessage).json_schema(by_alias=True),
    }


def relayed(message: Offer | Answer | Candidate | Restart | Chat, sender: str) -> str:
    """The frame as delivered (JSON text): the client's fields minus `to`, plus the derived
    `from`. Serialised by pydantic's core in one step: this runs for every relayed frame."""
    body = message.model_dump_json(exclude={"to"}, exclude_none=True)
    return f'{body[:-1]},"from":{json.dumps(sender)}}}'


def error(code: str, message: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "type": "error", "code": code, "message": message}
