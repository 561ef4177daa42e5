"""CloudEvents Kafka protocol binding, binary mode.

Headers carry the envelope (`ce_id` is the idempotency key, made when the event is
recorded — never the Kafka offset, which changes on re-publication); the Kafka value is
the serialized protobuf message; the Kafka key is the aggregate id (`ce_subject`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from google.protobuf.message import DecodeError, Message

from maillage_common.events.catalogue import EventCatalogue, UnknownEventTypeError

CONTENT_TYPE = "application/protobuf"
SPEC_VERSION = "1.0"

M = TypeVar("M", bound=Message)


class UndecodableEventError(ValueError):
    """The record is not a valid Maillage event; it belongs in the dead-letter topic."""


@dataclass(frozen=True, slots=True)
class Event(Generic[M]):
    id: UUID
    type: str
    source: str
    subject: str
    time: datetime
    message: M
    traceparent: str | None = None


def encode_headers(
    *,
    event_id: UUID,
    event_type: str,
    source: str,
    subject: str,
    time: datetime,
    traceparent: str | None,
) -> list[tuple[str, bytes]]:
    headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", str(event_id).encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", time.isoformat().encode()),
        ("ce_subject", subject.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers


def header_map(headers: Sequence[tuple[str, bytes]] | dict[str, str]) -> dict[str, str]:
    if isinstance(headers, dict):
        return dict(headers)
    return {name: value.decode("utf-8", "replace") for name, value in headers}


def decode_event(
    headers: dict[str, str], value: bytes | None, catalogue: EventCatalogue
) -> Event[Message]:
    """Parse one record, or raise UndecodableEventError saying why."""
    if headers.get("ce_specversion") != SPEC_VERSION:
        raise UndecodableEventError(f"unsupported ce_specversion {headers.get('ce_specversion')!r}")
    if headers.get("content-type") != CONTENT_TYPE:
        raise UndecodableEventError(f"unsupported content-type {headers.get('content-type')!r}")
    try:
        event_id = UUID(headers["ce_id"])
        event_type = headers["ce_type"]
        time = datetime.fromisoformat(headers["ce_time"])
        source, subject = headers["ce_source"], headers["ce_subject"]
    except (KeyError, ValueError) as error:
        raise UndecodableEventError(f"missing or invalid CloudEvents header: {error}") from error
    try:
        message = catalogue.message_type(event_type)()
    except UnknownEventTypeError as error:
        raise UndecodableEventError(f"unknown event type {event_type!r}") from error
    try:
        message.ParseFromString(value or b"")
    except DecodeError as error:
        raise UndecodableEventError(f"payload is not a valid {event_type}: {error}") from error
    return Event(
        id=event_id,
        type=event_type,
        source=source,
        subject=subject,
        time=time,
        message=message,
        traceparent=headers.get("traceparent"),
    )
