"""Event entrypoints: one consumer group per read model, applying events idempotently."""

from __future__ import annotations

from typing import Any

from maillage_common.bus import EventConsumer
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.events.envelope import Event
from maillage_statistics.db.projections import apply_writes
from maillage_statistics.handlers.projection import PROJECTORS, PROJECTORS_BY_TYPE

CONSUMER_GROUP = "statistics-projections"


async def project_event(event: Event[Any], uow: UnitOfWork) -> None:
    """Fold one event into the projections (the consumer already claimed it in the inbox)."""
    await apply_writes(uow.session, PROJECTORS_BY_TYPE[event.type](event))


def consumers(group: str = CONSUMER_GROUP) -> list[EventConsumer]:
    return [EventConsumer(group, handlers=dict.fromkeys(PROJECTORS, project_event))]
