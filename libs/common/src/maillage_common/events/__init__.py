"""Events on Kafka: protobuf messages from `proto/` in a CloudEvents binary-mode envelope."""

from maillage_common.events.catalogue import EventCatalogue, UnknownEventTypeError, topic_of
from maillage_common.events.envelope import (
    CONTENT_TYPE,
    Event,
    UndecodableEventError,
    decode_event,
    encode_headers,
)

__all__ = [
    "CONTENT_TYPE",
    "Event",
    "EventCatalogue",
    "UndecodableEventError",
    "UnknownEventTypeError",
    "decode_event",
    "encode_headers",
    "topic_of",
]
