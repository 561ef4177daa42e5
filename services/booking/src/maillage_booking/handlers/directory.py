"""Directory snapshots into the local read model (responders, sites, kiosks)."""

from __future__ import annotations

from maillage.directory.v1 import events_pb2 as directory
from maillage_booking.use_cases.directory import apply_kiosk, apply_professional, apply_site
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.events.envelope import Event


async def on_professional(event: Event[directory.ProfessionalChanged], uow: UnitOfWork) -> None:
    await apply_professional(uow, event.message)


async def on_site(event: Event[directory.SiteChanged], uow: UnitOfWork) -> None:
    await apply_site(uow, event.message)


async def on_kiosk(event: Event[directory.KioskChanged], uow: UnitOfWork) -> None:
    await apply_kiosk(uow, event.message)
