"""Search professionals and sites: filters, local first (same département, then distance)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncEngine

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_directory.db import search
from maillage_directory.db.repositories import DirectoryRepository
from maillage_directory.db.search import Criteria, DocumentHit, Hit, Query
from maillage_directory.domain.errors import ValidationFailedError


@dataclass(frozen=True, slots=True)
class Page:
    hits: list[Hit]
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class DocumentPage:
    hits: list[DocumentHit]
    next_offset: int | None


async def _around_site(uow: UnitOfWork, criteria: Criteria, site_id: uuid.UUID) -> Criteria:
    site = await DirectoryRepository(uow.session).get("site", site_id)
    if site is None:
        raise ValidationFailedError.single("near_site", "no such site")
    location = site.data["location"]
    return replace(
        criteria,
        latitude=location["latitude"],
        longitude=location["longitude"],
        local_departement=criteria.local_departement or site.data["departement"],
    )


async def _query(
    uow: UnitOfWork, kind: str, criteria: Criteria, near_site: uuid.UUID | None
) -> tuple[Criteria, Query]:
    if near_site is not None:
        criteria = await _around_site(uow, criteria, near_site)
    return _local_query(kind, criteria)


def _local_query(kind: str, criteria: Criteria) -> tuple[Criteria, Query]:
    if criteria.local_departement is None and criteria.departements:
        criteria = replace(criteria, local_departement=criteria.departements[0])
    if kind == "professional":
        return criteria, search.professional_query(criteria)
    return criteria, search.site_query(criteria)


def _next(criteria: Criteria, found: int) -> int | None:
    return criteria.offset + criteria.limit if found > criteria.limit else None


async def search_directory(
    uow: UnitOfWork, kind: str, criteria: Criteria, near_site: uuid.UUID | None = None
) -> Page:
    """One page of professionals or sites matching `criteria`, local first."""
    async with uow:
        criteria, query = await _query(uow, kind, criteria, near_site)
        hits = await search.run(uow.session, query)
    return Page(hits[: criteria.limit], _next(criteria, len(hits)))


async def search_documents(
    engine: AsyncEngine, kind: str, criteria: Criteria, near_site: uuid.UUID | None = None
) -> DocumentPage:
    """Like `search_directory`, each hit as JSON text with `criteria.redact` fields nulled.

    Read-only, so no unit of work: each statement runs on its own in autocommit. A
    transaction would add a BEGIN and a ROLLBACK round trip to the one that matters.
    """
    criteria = replace(criteria, documents=True)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        if near_site is not None:
            point = await search.site_point(connection, near_site)
            if point is None:
                raise ValidationFailedError.single("near_site", "no such site")
            criteria = replace(
                criteria,
                latitude=point.latitude,
                longitude=point.longitude,
                local_departement=criteria.local_departement or point.departement,
            )
        criteria, query = _local_query(kind, criteria)
        hits = await search.run_documents(connection, query)
    return DocumentPage(hits[: criteria.limit], _next(criteria, len(hits)))
