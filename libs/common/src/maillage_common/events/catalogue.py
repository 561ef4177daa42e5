"""Which message types exist and which topic each belongs to — read from `proto/`.

The topic is a custom option on each event message (`option (maillage.common.v1.topic)`),
so the .proto files stay the single source of truth.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from google.protobuf.message import Message

import maillage
from maillage.common.v1 import options_pb2


class UnknownEventTypeError(LookupError):
    """A `ce_type` that no contract of this build defines (unknown or another version)."""


def topic_of(message_type: type[Message]) -> str:
    topic: str = message_type.DESCRIPTOR.GetOptions().Extensions[options_pb2.topic]
    if not topic:
        raise ValueError(f"{message_type.DESCRIPTOR.full_name} declares no topic in proto/")
    return topic


class EventCatalogue:
    """Every event message type of the contracts package, by full name."""

    def __init__(self, message_types: dict[str, type[Message]]) -> None:
        self._by_name = message_types

    @classmethod
    @cache
    def load(cls) -> EventCatalogue:
        found: dict[str, type[Message]] = {}
        for module_info in pkgutil.walk_packages(maillage.__path__, prefix="maillage."):
            if not module_info.name.endswith(".events_pb2"):
                continue
            module = importlib.import_module(module_info.name)
            for descriptor in module.DESCRIPTOR.message_types_by_name.values():
                message_type = getattr(module, descriptor.name)
                if descriptor.GetOptions().Extensions[options_pb2.topic]:
                    found[descriptor.full_name] = message_type
        return cls(found)

    def message_type(self, full_name: str) -> type[Message]:
        try:
            return self._by_name[full_name]
        except KeyError:
            raise UnknownEventTypeError(full_name) from None

    def topics(self) -> set[str]:
        return {topic_of(message_type) for message_type in self._by_name.values()}

    def __contains__(self, full_name: object) -> bool:
        return full_name in self._by_name
