"""Local read model of the directory: full snapshots, applied only when newer (order-tolerant)."""

from __future__ import annotations

import logging
from typing import Any

from maillage.directory.v1 import events_pb2 as directory
from maillage_booking.db import repositories as repo
from maillage_booking.db.tables import kiosks, responders, sites
from maillage_booking.domain.opening_hours import (
    UninterpretableHoursError,
    opening_hours_document,
    parse_opening_hours,
)
from maillage_common.db.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


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
            "opening_hours": _opening_hours(s),
        },
    )


def _opening_hours(site: directory.Site) -> dict[str, Any] | None:
    """The site's hours as published (None: a snapshot from before hours existed, i.e.
    unknown). Hours that cannot be interpreted are kept, and treated as unknown when a
    booking reads them."""
    if not site.HasField("opening_hours"):
        return None
    hours = site.opening_hours
    document = opening_hours_document(
        timezone=hours.timezone,
        weekly=[(list(w.days), w.opens, w.closes) for w in hours.weekly],
        exceptions=[(e.date, [(r.opens, r.closes) for r in e.ranges]) for e in hours.exceptions],
        note=hours.note,
    )
    try:
        parse_opening_hours(document)
    except UninterpretableHoursError as error:
        log.warning(
            "site %s: opening hours not interpretable (%s): treated as unknown", site.id, error
        )
    return document


async def apply_kiosk(uow: UnitOfWork, event: directory.KioskChanged) -> bool:
    k = event.kiosk
    return await repo.upsert_versioned(
        uow.session,
        kiosks,
        {"id": k.id, "site_id": k.site_id, "active": k.active, "version": event.version},
    )
