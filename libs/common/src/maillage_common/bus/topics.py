"""Topics are created explicitly and idempotently at startup (no broker auto-creation)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


async def ensure_topics(bootstrap_servers: str, topics: Iterable[TopicSpec]) -> None:
    """Create the missing topics; existing ones are left as they are."""
    wanted = {spec.name: spec for spec in topics}
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    try:
        missing = set(wanted) - set(await admin.list_topics())
        if not missing:
            return
        response = await admin.create_topics(
            [
                NewTopic(name, wanted[name].partitions, wanted[name].replication_factor)
                for name in sorted(missing)
            ]
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: error {code} {rest}")
    finally:
        await admin.close()
