"""Reads and writes of the directory's tables (never commit: the use case does)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_directory.db.tables import changes, kiosks, professionals, sites


@dataclass(frozen=True, slots=True)
class StoredAggregate:
    """One row of an aggregate table: its snapshot and bookkeeping."""

    id: uuid.UUID
    version: int
    active: bool
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    version: int
    change: str
    actor: str
    changed_at: datetime
    diff: dict[str, Any]
    reason: str | None = None


TABLES: dict[str, Table] = {
    "professional": professionals,
    "site": sites,
    "kiosk": kiosks,
}


def _stored(row: Any) -> StoredAggregate:
    return StoredAggregate(
        row.id, row.version, row.active, dict(row.data), row.created_at, row.updated_at
    )


class DirectoryRepository:
    """Aggregates by kind ("professional", "site", "kiosk") plus their change history."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(
        self, kind: str, aggregate_id: uuid.UUID, *, lock: bool = False
    ) -> StoredAggregate | None:
        table = TABLES[kind]
        query = select(table).where(table.c.id == aggregate_id)
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else _stored(row)

    async def find_id(self, kind: str, column: str, value: str) -> uuid.UUID | None:
        table = TABLES[kind]
        query = select(table.c.id).where(table.c[column] == value)
        found: uuid.UUID | None = (await self._session.execute(query)).scalar_one_or_none()
        return found

    async def find_by_name(self, kind: str, name: str, commune_insee: str) -> uuid.UUID | None:
        table = TABLES[kind]
        query = (
            select(table.c.id)
            .where(table.c.name == name, table.c.commune_insee == commune_insee)
            .order_by(table.c.created_at)
            .limit(1)
        )
        found: uuid.UUID | None = (await self._session.execute(query)).scalar_one_or_none()
        return found

    async def list_where(self, kind: str, column: str, value: object) -> list[StoredAggregate]:
        table = TABLES[kind]
        query = select(table).where(table.c[column] == value).order_by(table.c.created_at)
        return [_stored(row) for row in (await self._session.execute(query)).all()]

    async def insert(
        self, kind: str, aggregate: StoredAggregate, columns: Mapping[str, Any]
    ) -> None:
        await self._session.execute(
            insert(TABLES[kind]).values(
                id=aggregate.id,
                version=aggregate.version,
                active=aggregate.active,
                data=aggregate.data,
                created_at=aggregate.created_at,
                updated_at=aggregate.updated_at,
                **columns,
            )
        )

    async def replace(
        self, kind: str, aggregate: StoredAggregate, columns: Mapping[str, Any]
    ) -> None:
        table = TABLES[kind]
        await self._session.execute(
            update(table)
            .where(table.c.id == aggregate.id)
            .values(
                version=aggregate.version,
                active=aggregate.active,
                data=aggregate.data,
                updated_at=aggregate.updated_at,
                **columns,
            )
        )

    async def add_change(self, kind: str, aggregate_id: uuid.UUID, record: ChangeRecord) -> None:
        await self._session.execute(
            insert(changes).values(
                aggregate=kind,
                aggregate_id=aggregate_id,
                version=record.version,
                change=record.change,
                actor=record.actor,
                changed_at=record.changed_at,
                diff=record.diff,
                reason=record.reason,
            )
        )

    async def history(self, kind: str, aggregate_id: uuid.UUID) -> Sequence[ChangeRecord]:
        query = (
            select(changes)
            .where(changes.c.aggregate == kind, changes.c.aggregate_id == aggregate_id)
            .order_by(changes.c.version, changes.c.id)
        )
        rows = (await self._session.execute(query)).all()
        return [
            ChangeRecord(r.version, r.change, r.actor, r.changed_at, r.diff, r.reason) for r in rows
        ]

    async def lock_batch(
        self, kind: str, after: uuid.UUID | None, limit: int
    ) -> list[StoredAggregate]:
        """The next `limit` rows by id after `after`, locked like an edit locks its row.

        FOR NO KEY UPDATE: it excludes concurrent edits of these rows (they wait, then see
        the new version) without blocking a kiosk insert that references a locked site.
        """
        table = TABLES[kind]
        query = select(table).order_by(table.c.id).limit(limit)
        if after is not None:
            query = query.where(table.c.id > after)
        rows = (await self._session.execute(query.with_for_update(key_share=True))).all()
        return [_stored(row) for row in rows]

    async def kiosk_by_key(self, key_id: str) -> tuple[StoredAggregate, str, bool] | None:
        query = select(kiosks).where(kiosks.c.credential_key_id == key_id)
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        return _stored(row), row.credential_hash or "", row.credential_revoked
