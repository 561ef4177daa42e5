"""Publish every row's current snapshot again, under a new version.

A data migration that rewrites rows in place (0003 converted opening hours and a specialty
code without bumping versions) leaves the read models other services keep from our events
stale: they hold the old snapshot at the same version. Republishing bumps each row's
version and records its full snapshot event in the outbox in the same transaction, through
the same `aggregates.write` as any edit (same snapshot builder, same history line), so the
relay publishes it and consumers apply it as a newer version.

Safe while the service serves: each batch locks its rows the way an edit locks its row, so
an edit either commits first (the republish then reads and publishes the edited state) or
waits and commits after under the next version. Versions only grow, events of one
aggregate are recorded in version order. An edit whose `If-Match` names the pre-republish
version gets 412 like after any other change. Each batch commits on its own: an
interrupted run leaves every row either republished or untouched, and running again
simply republishes everything again (one more version each), which consumers apply.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.db.repositories import DirectoryRepository
from maillage_directory.metrics import CHANGES
from maillage_directory.use_cases.aggregates import (
    KIOSK,
    PROFESSIONAL,
    SITE,
    AggregateKind,
    now,
    write,
)

_log = structlog.get_logger(__name__)

ACTOR = "system:republish"
CHANGE = "republished"
# Sites before kiosks: a consumer meets a kiosk's site republished first.
KINDS: dict[str, AggregateKind] = {"site": SITE, "professional": PROFESSIONAL, "kiosk": KIOSK}


@dataclass(slots=True)
class RepublishReport:
    """Rows republished per kind (each now one version higher, its snapshot in the outbox)."""

    republished: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.republished.values())


async def republish(
    unit_of_work: Callable[[], UnitOfWork],
    *,
    reason: str,
    kinds: Sequence[str] = tuple(KINDS),
    batch_size: int = 200,
) -> RepublishReport:
    """Bump every row of `kinds` (active or not) and record its snapshot, batch by batch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RepublishReport()
    for name in kinds:
        kind = KINDS[name]
        report.republished[name] = 0
        after: uuid.UUID | None = None
        while True:
            count, after = await _batch(unit_of_work(), kind, after, batch_size, reason)
            report.republished[name] += count
            if count:
                CHANGES.labels(kind.name, CHANGE).inc(count)
                _log.info("republished_batch", kind=name, rows=count, total=report.total)
            if count < batch_size:
                break
    return report


async def _batch(
    uow: UnitOfWork, kind: AggregateKind, after: uuid.UUID | None, size: int, reason: str
) -> tuple[int, uuid.UUID | None]:
    async with uow:
        rows = await DirectoryRepository(uow.session).lock_batch(kind.name, after, size)
        for current in rows:
            stored = replace(current, version=current.version + 1, updated_at=now())
            await write(uow, kind, stored, CHANGE, ACTOR, {}, new=False, reason=reason)
        await uow.commit()
    return len(rows), (rows[-1].id if rows else after)
