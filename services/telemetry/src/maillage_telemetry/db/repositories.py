"""Repositories over the telemetry tables. They never commit: the use case does."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import array, insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from maillage_common.db.engine import driver_connection
from maillage_telemetry.db.tables import (
    ALERT,
    CALL_QUALITY,
    CONSENT,
    DEVICE,
    HEARTBEAT,
    KIOSK,
    KIOSK_STATE,
    MEASUREMENT,
    MEASUREMENT_KEY,
    SITE,
)

ReadingKey = tuple[str, str, int]
"""(device_id, loinc_code, measured_at as microseconds since the epoch): the idempotency
key of a measurement."""

# The ingest hot-path statements run on the asyncpg connection of the session's
# transaction, in asyncpg's own $n style (records decoded in C, no SQLAlchemy row per
# reading: that was a visible share of the per-item cost).
# The claim takes its keys as three JSON arrays (device ids, LOINC codes, instants as
# exact epoch microseconds), zipped back by ROWS FROM: json.dumps encodes a list in C,
# where a bound text[] is inspected element by element in Python (half the client CPU,
# measured). It answers the ordinals of the new keys: an int per row to decode.
_CLAIM = """
    WITH k AS (
        SELECT d, c, timestamptz 'epoch' + m::int8 * interval '1 microsecond' AS m, n
        FROM ROWS FROM (
            json_array_elements_text($1::json),
            json_array_elements_text($2::json),
            json_array_elements_text($3::json)
        ) WITH ORDINALITY AS k(d, c, m, n)
    ), claimed AS (
        INSERT INTO measurement_key (device_id, loinc_code, measured_at, ingested_at)
        SELECT d, c, m, $4 FROM k
        ON CONFLICT DO NOTHING
        RETURNING device_id, loinc_code, measured_at
    )
    SELECT k.n FROM k
    JOIN claimed ON (claimed.device_id, claimed.loinc_code, claimed.measured_at) = (k.d, k.c, k.m)
"""
_STORED_TYPES = {
    "measurement_id": "uuid",
    "device_id": "text",
    "device_kind": "text",
    "kiosk_id": "text",
    "site_id": "text",
    "departement": "text",
    "patient_ref": "text",
    "loinc_code": "text",
    "ucum_unit": "text",
    "value": "float8",
    "components": "jsonb",
    "measured_at": "timestamptz",
    "received_at": "timestamptz",
    "abnormal": "boolean",
    "session_id": "text",
}
STORED_COLUMNS = tuple(_STORED_TYPES)
"""The order of a stored row's values (see MeasurementRepository.store)."""
# Rows are COPYed (binary, encoded in C row by row) into a per-connection temporary
# staging table, then moved by one INSERT … SELECT … ON CONFLICT DO NOTHING: unlike bound
# arrays, COPY does not inspect every element of every column in Python. The staging
# table holds the wire types: the uuid as text, jsonb as text, instants as exact
# microseconds since the epoch (bigint), turned into timestamptz by PostgreSQL rather
# than by a Python datetime per row.
_WIRE_TYPES = {**_STORED_TYPES, "measurement_id": "text", "components": "text"} | {
    c: "int8" for c, t in _STORED_TYPES.items() if t == "timestamptz"
}
_STAGE = "measurement_stage"
_CREATE_STAGE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} ("
    + ", ".join(f"{c} {t}" for c, t in _WIRE_TYPES.items())
    + ") ON COMMIT DELETE ROWS"
)
_SELECTED = ", ".join(
    f"{c}::{t}"
    if t in {"jsonb", "uuid"}
    else f"timestamptz 'epoch' + {c} * interval '1 microsecond'"
    if t == "timestamptz"
    else c
    for c, t in _STORED_TYPES.items()
)
# Built from the constant column list above, never from input. The staging rows are
# deleted by the same statement: a consumer transaction may store several batches.
_STORE = (
    f"WITH staged AS (DELETE FROM {_STAGE} RETURNING *) "  # noqa: S608
    f"INSERT INTO measurement ({', '.join(STORED_COLUMNS)}) "
    f"SELECT {_SELECTED} FROM staged "
    "ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a kiosk is, as the directory read model knows it."""

    site_id: str
    departement: str
    site_category: str
    known: bool = False
    active: bool = True
    credential_revoked: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    """What an upload needs to know before claiming its readings, read in one statement."""

    placement: Placement
    active_devices: frozenset[str]
    consented: frozenset[str]


# The kiosk's placement (as DirectoryRepository.placement), which of the upload's devices
# are enrolled and not revoked on it and which of its patient references have granted
# consent: one round trip instead of four. It is the upload's first statement: it runs
# through SQLAlchemy, which turns a lost connection into an invalidated one (the API
# answers 503, the pool refills).
_ADMISSION = text(
    """
    WITH kiosk_row AS (
        SELECT site_id, active, credential_revoked FROM kiosk WHERE kiosk_id = :kiosk_id
    ), site_row AS (
        SELECT departement, category FROM site
        WHERE site_id = coalesce(nullif(:site_id, ''), (SELECT site_id FROM kiosk_row))
    )
    SELECT
        EXISTS (SELECT FROM kiosk_row) AS known,
        (SELECT site_id FROM kiosk_row) AS kiosk_site_id,
        (SELECT active FROM kiosk_row) AS active,
        (SELECT credential_revoked FROM kiosk_row) AS credential_revoked,
        (SELECT departement FROM site_row) AS departement,
        (SELECT category FROM site_row) AS category,
        ARRAY(
            SELECT device_id FROM device
            WHERE kiosk_id = :kiosk_id AND device_id = ANY(CAST(:devices AS text[]))
                AND revoked_at IS NULL
        ) AS devices,
        ARRAY(
            SELECT patient_ref FROM consent
            WHERE patient_ref = ANY(CAST(:patient_refs AS text[])) AND granted
        ) AS consented
    """
)


class UploadRepository:
    """The reads of a measurement upload."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def admission(
        self,
        kiosk_id: str,
        fallback_site_id: str,
        device_ids: Iterable[str],
        patient_refs: Iterable[str],
    ) -> Admission:
        row = (
            await self._session.execute(
                _ADMISSION,
                {
                    "kiosk_id": kiosk_id,
                    "site_id": fallback_site_id,
                    "devices": list(device_ids),
                    "patient_refs": list(patient_refs),
                },
            )
        ).one()
        known = bool(row.known)
        placement = Placement(
            site_id=fallback_site_id or (row.kiosk_site_id or ""),
            departement=row.departement or "",
            site_category=row.category or "",
            known=known,
            active=row.active if known else True,
            credential_revoked=row.credential_revoked if known else False,
        )
        return Admission(placement, frozenset(row.devices), frozenset(row.consented))


class ConsentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def put(self, patient_ref: str, granted: bool, at: datetime, by: str) -> RowMapping:
        values = {"granted": granted, "recorded_at": at, "recorded_by": by}
        statement = (
            insert(CONSENT)
            .values(patient_ref=patient_ref, **values)
            .on_conflict_do_update(index_elements=[CONSENT.c.patient_ref], set_=values)
            .returning(*CONSENT.c)
        )
        return (await self._session.execute(statement)).mappings().one()

    async def get(self, patient_ref: str) -> RowMapping | None:
        rows = await self._session.execute(
            select(CONSENT).where(CONSENT.c.patient_ref == patient_ref)
        )
        return rows.mappings().first()


class MeasurementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, keys: Sequence[ReadingKey], at: datetime) -> list[int]:
        """Claim idempotency keys; returns the positions in `keys` of those not claimed
        before (the new readings), in no particular order."""
        if not keys:
            return []
        # Three parameters instead of 3 x N: one short statement to prepare whatever the
        # batch size.
        devices, codes, instants = zip(*keys, strict=True)
        driver = await driver_connection(self._session)
        rows = await driver.fetch(
            _CLAIM, json.dumps(devices), json.dumps(codes), json.dumps(instants), at
        )
        return [row[0] - 1 for row in rows]

    async def store(self, rows: Sequence[Sequence[Any]]) -> None:
        """Store rows (values in STORED_COLUMNS order; measurement_id as text, components
        as JSON text, instants as microseconds since the epoch) in one COPY and one
        INSERT … SELECT; a reading already stored (same key) is left as it is."""
        if not rows:
            return
        driver = await driver_connection(self._session)
        await driver.execute(_CREATE_STAGE)
        await driver.copy_records_to_table(_STAGE, records=rows, columns=STORED_COLUMNS)
        await driver.execute(_STORE)

    async def history(
        self,
        patient_ref: str,
        *,
        site_id: str | None,
        loinc_code: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[RowMapping]:
        query = select(MEASUREMENT).where(MEASUREMENT.c.patient_ref == patient_ref)
        if site_id is not None:
            query = query.where(MEASUREMENT.c.site_id == site_id)
        if loinc_code is not None:
            query = query.where(MEASUREMENT.c.loinc_code == loinc_code)
        if since is not None:
            query = query.where(MEASUREMENT.c.measured_at >= since)
        if until is not None:
            query = query.where(MEASUREMENT.c.measured_at < until)
        query = query.order_by(MEASUREMENT.c.measured_at.desc()).limit(limit)
        return list((await self._session.execute(query)).mappings())


class RetentionRepository:
    """Deletes what is older than the retention period, a bounded slice at a time."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def prune(self, cutoff: datetime, limit: int) -> int:
        deleted = 0
        for table, column in (
            (MEASUREMENT, MEASUREMENT.c.measured_at),
            (MEASUREMENT_KEY, MEASUREMENT_KEY.c.measured_at),
            (HEARTBEAT, HEARTBEAT.c.received_at),
        ):
            # ctid slices keep each statement short on a large table (BRIN finds them).
            result = await self._session.execute(
                text(
                    f"DELETE FROM {table.name} WHERE ctid = ANY(ARRAY("  # noqa: S608
                    f"SELECT ctid FROM {table.name} WHERE {column.name} < :cutoff "
                    "LIMIT :limit))"
                ),
                {"cutoff": cutoff, "limit": limit},
            )
            deleted += int(getattr(result, "rowcount", 0) or 0)
        return deleted


class DirectoryRepository:
    """The local read model of directory sites and kiosks (latest version wins)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def put_site(self, values: Mapping[str, Any]) -> None:
        await self._upsert_versioned(SITE, "site_id", values)

    async def put_kiosk(self, values: Mapping[str, Any]) -> None:
        await self._upsert_versioned(KIOSK, "kiosk_id", values)

    async def _upsert_versioned(self, table: Any, key: str, values: Mapping[str, Any]) -> None:
        statement = insert(table).values(**values)
        # An older snapshot arriving late (replay, republish) must not overwrite a newer one.
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c[key]],
                set_={name: statement.excluded[name] for name in values if name != key},
                where=table.c.version < statement.excluded.version,
            )
        )

    async def placement(self, kiosk_id: str, fallback_site_id: str) -> Placement:
        row = (
            await self._session.execute(
                select(KIOSK.c.site_id, KIOSK.c.active, KIOSK.c.credential_revoked).where(
                    KIOSK.c.kiosk_id == kiosk_id
                )
            )
        ).first()
        site_id = fallback_site_id or (row.site_id if row else "")
        site = (
            await self._session.execute(
                select(SITE.c.departement, SITE.c.category).where(SITE.c.site_id == site_id)
            )
        ).first()
        return Placement(
            site_id=site_id,
            departement=site.departement if site else "",
            site_category=site.category if site else "",
            known=row is not None,
            active=row.active if row else True,
            credential_revoked=row.credential_revoked if row else False,
        )


class KioskHealthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record_heartbeat(self, state: Mapping[str, Any], sent_at: datetime) -> bool:
        """Store the heartbeat and the kiosk's current state; returns whether it was offline."""
        previous = (
            await self._session.execute(
                select(KIOSK_STATE.c.offline)
                .where(KIOSK_STATE.c.kiosk_id == state["kiosk_id"])
                .with_for_update()
            )
        ).scalar()
        values = {**state, "offline": False}
        statement = insert(KIOSK_STATE).values(**values)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[KIOSK_STATE.c.kiosk_id],
                set_={k: statement.excluded[k] for k in values if k != "kiosk_id"},
            )
        )
        history = {k: v for k, v in state.items() if k not in {"site_id", "last_heartbeat_at"}}
        await self._session.execute(
            insert(HEARTBEAT)
            .values(**history, received_at=state["last_heartbeat_at"], sent_at=sent_at)
            .on_conflict_do_nothing()
        )
        return bool(previous)

    async def silent_since(self, cutoff: datetime, limit: int = 500) -> list[str]:
        """Kiosks not yet marked offline whose last heartbeat is older than `cutoff`."""
        rows = await self._session.execute(
            select(KIOSK_STATE.c.kiosk_id)
            .where(KIOSK_STATE.c.offline.is_(False), KIOSK_STATE.c.last_heartbeat_at < cutoff)
            .limit(limit)
        )
        return list(rows.scalars())

    async def mark_offline(self, kiosk_id: str, cutoff: datetime) -> RowMapping | None:
        """Mark it offline if it is still silent (a heartbeat may have raced the check)."""
        rows = await self._session.execute(
            update(KIOSK_STATE)
            .where(
                KIOSK_STATE.c.kiosk_id == kiosk_id,
                KIOSK_STATE.c.offline.is_(False),
                KIOSK_STATE.c.last_heartbeat_at < cutoff,
            )
            .values(offline=True)
            .returning(*KIOSK_STATE.c)
        )
        return rows.mappings().first()

    async def state(self, kiosk_id: str) -> RowMapping | None:
        query = (
            select(
                KIOSK_STATE,
                func.coalesce(SITE.c.departement, literal("")).label("departement"),
                func.coalesce(SITE.c.category, literal("")).label("site_category"),
            )
            .select_from(KIOSK_STATE.outerjoin(SITE, SITE.c.site_id == KIOSK_STATE.c.site_id))
            .where(KIOSK_STATE.c.kiosk_id == kiosk_id)
        )
        return (await self._session.execute(query)).mappings().first()

    async def directory_kiosk(self, kiosk_id: str) -> RowMapping | None:
        query = (
            select(
                KIOSK.c.kiosk_id,
                KIOSK.c.site_id,
                func.coalesce(SITE.c.departement, literal("")).label("departement"),
                func.coalesce(SITE.c.category, literal("")).label("site_category"),
            )
            .select_from(KIOSK.outerjoin(SITE, SITE.c.site_id == KIOSK.c.site_id))
            .where(KIOSK.c.kiosk_id == kiosk_id)
        )
        return (await self._session.execute(query)).mappings().first()

    async def recent_heartbeats(self, kiosk_id: str, limit: int) -> list[RowMapping]:
        rows = await self._session.execute(
            select(HEARTBEAT)
            .where(HEARTBEAT.c.kiosk_id == kiosk_id)
            .order_by(HEARTBEAT.c.received_at.desc())
            .limit(limit)
        )
        return list(rows.mappings())

    async def fleet(self) -> list[RowMapping]:
        """Every kiosk the directory or a heartbeat made known, with its site's place."""
        kiosk_ids = (
            select(KIOSK.c.kiosk_id)
            .where(KIOSK.c.active.is_(True))
            .union(select(KIOSK_STATE.c.kiosk_id))
            .subquery()
        )
        site_id = func.coalesce(KIOSK.c.site_id, KIOSK_STATE.c.site_id)
        query = (
            select(
                kiosk_ids.c.kiosk_id,
                func.coalesce(SITE.c.departement, literal("")).label("departement"),
                func.coalesce(SITE.c.category, literal("")).label("site_category"),
                KIOSK_STATE.c.last_heartbeat_at,
                KIOSK_STATE.c.reported_status,
                KIOSK_STATE.c.network_quality,
                KIOSK_STATE.c.peripherals,
            )
            .select_from(
                kiosk_ids.outerjoin(KIOSK, KIOSK.c.kiosk_id == kiosk_ids.c.kiosk_id)
                .outerjoin(KIOSK_STATE, KIOSK_STATE.c.kiosk_id == kiosk_ids.c.kiosk_id)
                .outerjoin(SITE, SITE.c.site_id == site_id)
            )
            .where(func.coalesce(KIOSK.c.active, literal(True)).is_(True))
        )
        return list((await self._session.execute(query)).mappings())


class AlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def open(self, values: Mapping[str, Any]) -> bool:
        """Open an alert unless one with the same dedup key is open; True when opened."""
        statement = (
            insert(ALERT)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[ALERT.c.dedup_key], index_where=text("cleared_at IS NULL")
            )
            .returning(ALERT.c.alert_id)
        )
        return (await self._session.execute(statement)).first() is not None

    async def clear(self, dedup_key: str, at: datetime, reason: str) -> RowMapping | None:
        """Close the open alert of `dedup_key`, if any, and return it."""
        rows = await self._session.execute(
            update(ALERT)
            .where(ALERT.c.dedup_key == dedup_key, ALERT.c.cleared_at.is_(None))
            .values(cleared_at=at, clear_reason=reason)
            .returning(*ALERT.c)
        )
        return rows.mappings().first()

    async def open_keys(self, keys: Iterable[str]) -> set[str]:
        wanted = list(set(keys))
        if not wanted:
            return set()
        rows = await self._session.execute(
            select(ALERT.c.dedup_key).where(
                and_(ALERT.c.dedup_key.in_(wanted), ALERT.c.cleared_at.is_(None))
            )
        )
        return set(rows.scalars())

    async def acknowledge(
        self, alert_id: Any, at: datetime, by: str, comment: str | None
    ) -> RowMapping | None:
        """Acknowledge the alert if it is still active and not yet acknowledged; returns it
        then, None otherwise (the caller reads it to tell why)."""
        rows = await self._session.execute(
            update(ALERT)
            .where(
                ALERT.c.alert_id == alert_id,
                ALERT.c.cleared_at.is_(None),
                ALERT.c.acknowledged_at.is_(None),
            )
            .values(acknowledged_at=at, acknowledged_by=by, acknowledgement_comment=comment)
            .returning(*ALERT.c)
        )
        return rows.mappings().first()

    async def open_counts(self) -> list[tuple[str, str, int]]:
        """(kind, département, alerts neither cleared nor acknowledged)."""
        rows = await self._session.execute(
            select(ALERT.c.kind, ALERT.c.departement, func.count())
            .where(ALERT.c.cleared_at.is_(None), ALERT.c.acknowledged_at.is_(None))
            .group_by(ALERT.c.kind, ALERT.c.departement)
        )
        return [(kind, departement, int(count)) for kind, departement, count in rows]

    async def get(self, alert_id: Any) -> RowMapping | None:
        rows = await self._session.execute(select(ALERT).where(ALERT.c.alert_id == alert_id))
        return rows.mappings().first()

    async def search(
        self,
        *,
        open_only: bool,
        site_id: str | None,
        departement: str | None,
        kind: str | None,
        limit: int,
    ) -> list[RowMapping]:
        """Alerts newest first; open = neither cleared nor acknowledged."""
        query = select(ALERT)
        if open_only:
            query = query.where(ALERT.c.cleared_at.is_(None), ALERT.c.acknowledged_at.is_(None))
        if site_id is not None:
            query = query.where(ALERT.c.site_id == site_id)
        if departement is not None:
            query = query.where(ALERT.c.departement == departement)
        if kind is not None:
            query = query.where(ALERT.c.kind == kind)
        query = query.order_by(ALERT.c.raised_at.desc()).limit(limit)
        return list((await self._session.execute(query)).mappings())

    async def for_kiosk(self, kiosk_id: str, *, open_only: bool, limit: int) -> list[RowMapping]:
        query = select(ALERT).where(ALERT.c.kiosk_id == kiosk_id)
        if open_only:
            query = query.where(ALERT.c.cleared_at.is_(None))
        query = query.order_by(ALERT.c.raised_at.desc()).limit(limit)
        return list((await self._session.execute(query)).mappings())


class DeviceRepository:
    """Devices enrolled on kiosks and their credentials (one row per enrolment)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def enrol(self, values: Mapping[str, Any]) -> RowMapping | None:
        """Enrol a device; None when it is already active (on this kiosk or another)."""
        statement = (
            insert(DEVICE)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[DEVICE.c.device_id], index_where=text("revoked_at IS NULL")
            )
            .returning(*DEVICE.c)
        )
        return (await self._session.execute(statement)).mappings().first()

    async def active(self, device_id: str) -> RowMapping | None:
        rows = await self._session.execute(
            select(DEVICE).where(DEVICE.c.device_id == device_id, DEVICE.c.revoked_at.is_(None))
        )
        return rows.mappings().first()

    async def by_credential(self, credential_id: Any) -> RowMapping | None:
        rows = await self._session.execute(
            select(DEVICE).where(DEVICE.c.credential_id == credential_id)
        )
        return rows.mappings().first()

    async def revoke(
        self, kiosk_id: str, device_id: str, at: datetime, by: str, reason: str | None
    ) -> RowMapping | None:
        rows = await self._session.execute(
            update(DEVICE)
            .where(
                DEVICE.c.kiosk_id == kiosk_id,
                DEVICE.c.device_id == device_id,
                DEVICE.c.revoked_at.is_(None),
            )
            .values(revoked_at=at, revoked_by=by, revoke_reason=reason)
            .returning(*DEVICE.c)
        )
        return rows.mappings().first()

    async def of_kiosk(self, kiosk_id: str, *, limit: int) -> list[RowMapping]:
        """The kiosk's enrolments, newest first (revoked ones included)."""
        rows = await self._session.execute(
            select(DEVICE)
            .where(DEVICE.c.kiosk_id == kiosk_id)
            .order_by(DEVICE.c.enrolled_at.desc())
            .limit(limit)
        )
        return list(rows.mappings())


PERCENTILES = (0.5, 0.9, 0.95, 0.99)
QUALITY_METRICS = ("rtt_ms", "jitter_ms", "loss_ratio", "bitrate_kbps")


class CallQualityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, values: Mapping[str, Any]) -> bool:
        """Store a report; False when the same (kiosk, session, instant) was stored before."""
        statement = (
            insert(CALL_QUALITY).values(**values).on_conflict_do_nothing().returning(literal(1))
        )
        return (await self._session.execute(statement)).first() is not None

    async def summary(
        self,
        *,
        session_id: str | None = None,
        site_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[RowMapping, dict[str, int]]:
        """Count, time span and percentiles of each metric (PostgreSQL ordered-set
        aggregates, one pass), and the number of reports per quality level."""
        conditions: list[Any] = []
        if session_id is not None:
            conditions.append(CALL_QUALITY.c.session_id == session_id)
        if site_id is not None:
            conditions.append(CALL_QUALITY.c.site_id == site_id)
        if since is not None:
            conditions.append(CALL_QUALITY.c.measured_at >= since)
        if until is not None:
            conditions.append(CALL_QUALITY.c.measured_at < until)
        columns: list[Any] = [
            func.count().label("reports"),
            func.min(CALL_QUALITY.c.measured_at).label("first_at"),
            func.max(CALL_QUALITY.c.measured_at).label("last_at"),
        ]
        fractions = array([literal(p) for p in PERCENTILES])
        for metric in QUALITY_METRICS:
            column = CALL_QUALITY.c[metric]
            columns += [
                func.percentile_cont(fractions).within_group(column).label(f"{metric}_p"),
                func.min(column).label(f"{metric}_min"),
                func.max(column).label(f"{metric}_max"),
            ]
        summary = (await self._session.execute(select(*columns).where(*conditions))).mappings()
        levels = await self._session.execute(
            select(CALL_QUALITY.c.level, func.count())
            .where(*conditions)
            .group_by(CALL_QUALITY.c.level)
        )
        return summary.one(), {level: int(count) for level, count in levels}
