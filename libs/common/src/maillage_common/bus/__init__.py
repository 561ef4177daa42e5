"""The reliable event bus: topics, the outbox relay and the idempotent consumer."""

from maillage_common.bus.consumer import (
    EventConsumer,
    EventHandler,
    InvalidEventError,
    TransientError,
)
from maillage_common.bus.relay import OutboxRelay
from maillage_common.bus.topics import TopicSpec, dead_letter_topic, ensure_topics

__all__ = [
    "EventConsumer",
    "EventHandler",
    "InvalidEventError",
    "OutboxRelay",
    "TopicSpec",
    "TransientError",
    "dead_letter_topic",
    "ensure_topics",
]
