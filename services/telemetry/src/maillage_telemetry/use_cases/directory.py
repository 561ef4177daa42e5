"""The local read model of directory sites and kiosks (version-checked snapshots)."""

from __future__ import annotations

from maillage.directory.v1 import events_pb2 as directory_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import DirectoryRepository
from maillage_telemetry.use_cases import contract


async def apply_site_snapshot(uow: UnitOfWork, event: directory_pb2.SiteChanged) -> None:
    """Keep the site's département and category; an older version is ignored."""
    site = event.site
    await DirectoryRepository(uow.session).put_site(
        {
            "site_id": site.id,
            "departement": site.departement,
            "category": contract.site_category_name(site.category),
            "active": site.active,
            "version": event.version,
        }
    )


async def apply_kiosk_snapshot(uow: UnitOfWork, event: directory_pb2.KioskChanged) -> None:
    """Keep the kiosk's site and whether it may still send; an older version is ignored."""
    kiosk = event.kiosk
    await DirectoryRepository(uow.session).put_kiosk(
        {
            "kiosk_id": kiosk.id,
            "site_id": kiosk.site_id,
            "active": kiosk.active,
            "credential_revoked": kiosk.credential_revoked,
            "version": event.version,
        }
    )
