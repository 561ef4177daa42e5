"""Local read model of the directory: full snapshots, applied only when newer (order-tolerant)."""

from __future__ import annotations

from maillage.directory.v1 import events_pb2 as directory
from maillage_booking.db import repositories as repo
from maillage_booking.db.tables import kiosks, responders, sites
from maillage_common.db.unit_of_work import UnitOfWork


async def apply_professional(uow: UnitOfWork, event: directory.ProfessionalChanged) -> bool:
    p = event.professional
    located = [loc for loc in p.practice_locations if loc.HasField("location")]
    return await repo.upsert_versioned(
        uow.session,
        responders,
        {
            "id": p.id,
            "rpps": p.rpps,
            "specialty_codes": list(p.specialty_codes),
            "acts": [int(a) for a in p.acts],
            "departements": list(p.departements),
            "active": p.active,
            "version": event.version,
            "on_duty": False,
            "latitudes": [loc.location.latitude for loc in located],
            "longitudes": [loc.location.longitude for loc in located],
        },
        insert_only=("on_duty",),
    )


async def apply_site(uow: UnitOfWork, event: directory.SiteChanged) -> bool:
    s = event.site
    return await repo.upsert_versioned(
        uow.session,
        sites,
        {
            "id": s.id,
            "name": s.name,
            "departement": s.departement,
            "active": s.active,
            "version": event.version,
            "latitude": s.location.latitude if s.HasField("location") else None,
            "longitude": s.location.longitude if s.HasField("location") else None,
        },
    )


async def apply_kiosk(uow: UnitOfWork, event: directory.KioskChanged) -> bool:
    k = event.kiosk
    return await repo.upsert_versioned(
        uow.session,
        kiosks,
        {"id": k.id, "site_id": k.site_id, "active": k.active, "version": event.version},
    )
