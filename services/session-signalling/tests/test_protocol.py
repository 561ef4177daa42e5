"""The signalling wire format: validation, sender stamping, exported schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from maillage_session_signalling.domain.lifecycle import Role
from maillage_session_signalling.signalling import protocol as p
from maillage_session_signalling.signalling.tokens import (
    InvalidJoinTokenError,
    JoinGrant,
    JoinTokens,
)


def test_messages_are_discriminated_by_type() -> None:
    message = p.CLIENT_MESSAGES.validate_json('{"type":"offer","v":1,"to":"abc","sdp":"v=0"}')
    assert isinstance(message, p.Offer)
    chat = p.CLIENT_MESSAGES.validate_json('{"type":"chat","text":"bonjour"}')
    assert isinstance(chat, p.Chat)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '{"type":"teleport"}',
        '{"type":"offer","to":"abc"}',
        '{"type":"offer","to":"abc","sdp":"v=0","from":"someone-else"}',
        '{"type":"chat","text":"hi","v":2}',
        "[]",
    ],
)
def test_malformed_unknown_spoofed_or_future_frames_are_rejected(frame: str) -> None:
    with pytest.raises(ValidationError):
        p.CLIENT_MESSAGES.validate_json(frame)


def test_relayed_frames_carry_the_derived_sender_and_drop_the_target() -> None:
    message = p.Answer(type="answer", to="bob", sdp="v=0")
    relayed = json.loads(p.relayed(message, "alice"))
    assert relayed == {"v": 1, "type": "answer", "sdp": "v=0", "from": "alice"}
    # A sender id is JSON-escaped, never spliced raw.
    assert json.loads(p.relayed(message, 'a"b'))["from"] == 'a"b'


def test_json_schema_covers_every_message_type() -> None:
    schema = p.json_schema()
    client = set(schema["client_to_server"]["discriminator"]["mapping"])
    assert client == set(
        [
            "join",
            "admit",
            "offer",
            "answer",
            "candidate",
            "restart",
            "chat",
            "quality",
            "leave",
            "bye",
        ]
    )
    server = set(schema["server_to_client"]["discriminator"]["mapping"])
    assert {"joined", "peer_joined", "peer_left", "state", "bye", "error", "offer"} <= server


def _grant(expires_at: datetime) -> JoinGrant:
    return JoinGrant(uuid.uuid4(), "room", "p1", Role.PATIENT, "", expires_at)


def test_join_token_round_trips_and_is_bound_to_its_secret_and_expiry() -> None:
    tokens = JoinTokens("a" * 32)
    grant = _grant(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5))
    assert tokens.verify(tokens.issue(grant)) == grant
    with pytest.raises(InvalidJoinTokenError):
        JoinTokens("b" * 32).verify(tokens.issue(grant))
    with pytest.raises(InvalidJoinTokenError):
        tokens.verify(tokens.issue(_grant(datetime.now(UTC) - timedelta(seconds=5))))
    with pytest.raises(InvalidJoinTokenError):
        tokens.verify("garbage")
