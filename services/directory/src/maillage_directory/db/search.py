"""Search queries: filters on indexed columns, a bounding-box prefilter then haversine.

No PostGIS or earthdistance: a GiST on the built-in `point(longitude, latitude)` narrows
the rows to a box (ANDed with the GIN of the array filters), the exact great-circle
distance is computed in SQL on what is left. Indexes: migration 0004.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Integer,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from maillage_directory.db.repositories import StoredAggregate
from maillage_directory.db.tables import point as point_of
from maillage_directory.db.tables import professionals, sites
from maillage_directory.domain.geography import EARTH_RADIUS_KM, bounding_box


@dataclass(frozen=True, slots=True)
class Criteria:
    """Every filter a search accepts (all optional, combined with AND)."""

    specialties: Sequence[str] = ()
    act: str | None = None
    departements: Sequence[str] = ()
    latitude: float | None = None
    longitude: float | None = None
    radius_km: float | None = None
    local_departement: str | None = None
    technical_vendor: str | None = None
    language: str | None = None
    max_response_hours: int | None = None
    external_patients: bool | None = None
    include_inactive: bool = False
    # Return each row as ready-made JSON text (see `_document`), without these keys' values.
    documents: bool = False
    redact: tuple[str, ...] = ()
    limit: int = 20
    offset: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    aggregate: StoredAggregate
    distance_km: float | None


@dataclass(frozen=True, slots=True)
class DocumentHit:
    """A row as JSON text, built by PostgreSQL: the hot search path skips decode/encode."""

    document: str
    distance_km: float | None


def _key(name: str) -> ColumnElement[Any]:
    # Keys are constants of this module, never user input.
    return literal_column(f"'{name}'")


def _document(table: Table, redact: tuple[str, ...]) -> ColumnElement[Any]:
    """The row's snapshot plus bookkeeping, with `redact`ed fields set to null."""
    bookkeeping = func.jsonb_build_object(
        *(
            part
            for name in ("id", "version", "active", "created_at", "updated_at")
            for part in (_key(name), table.c[name])
        )
    )
    document = table.c.data.op("||")(bookkeeping)
    if redact:
        nulls = func.jsonb_build_object(*(part for name in redact for part in (_key(name), null())))
        document = document.op("||")(nulls)
    result: ColumnElement[Any] = cast(document, Text)
    return result


@dataclass(frozen=True, slots=True)
class Query:
    """A statement shared by every search of the same shape, and this search's values.

    Statements are built once per shape (which filters are present) with bind parameters:
    building SQLAlchemy expressions per request cost more than running the query.
    """

    statement: Select[Any]
    parameters: dict[str, Any]


_TEXTS = ARRAY(Text)


def _distance(table: Table) -> ColumnElement[Any]:
    lat0 = func.radians(bindparam("ref_latitude", type_=Float))
    dlat = func.radians(table.c.latitude - bindparam("ref_latitude", type_=Float))
    dlon = func.radians(table.c.longitude - bindparam("ref_longitude", type_=Float))
    a = func.power(func.sin(dlat / 2), 2) + func.cos(lat0) * func.cos(
        func.radians(table.c.latitude)
    ) * func.power(func.sin(dlon / 2), 2)
    return 2 * EARTH_RADIUS_KM * func.asin(func.sqrt(func.least(literal(1.0), a)))


def _values(criteria: Criteria) -> dict[str, Any]:
    values: dict[str, Any] = {
        "specialties": list(criteria.specialties),
        "act": criteria.act,
        "departements": list(criteria.departements),
        "ref_latitude": criteria.latitude,
        "ref_longitude": criteria.longitude,
        "radius_km": criteria.radius_km,
        "local": criteria.local_departement,
        "vendor": (criteria.technical_vendor or "").lower(),
        "language": (criteria.language or "").lower(),
        "max_hours": criteria.max_response_hours,
        "external": criteria.external_patients,
        "category": criteria.extra.get("category"),
        "limit": criteria.limit + 1,
        "offset": criteria.offset,
    }
    if criteria.latitude is not None and criteria.longitude is not None and criteria.radius_km:
        box = bounding_box(criteria.latitude, criteria.longitude, criteria.radius_km)
        values.update(south=box.south, north=box.north, west=box.west, east=box.east)
    return values


def _shape(criteria: Criteria) -> tuple[Any, ...]:
    present = tuple(
        value not in (None, "", [])
        for value in (
            list(criteria.specialties),
            criteria.act,
            list(criteria.departements),
            criteria.technical_vendor,
            criteria.language,
            criteria.max_response_hours,
            criteria.external_patients,
            criteria.extra.get("category"),
            criteria.local_departement,
        )
    )
    point = criteria.latitude is not None and criteria.longitude is not None
    near = point and criteria.radius_km is not None
    return (
        *present,
        point,
        near,
        criteria.include_inactive,
        criteria.documents,
        criteria.redact,
    )


def _page(
    table: Table,
    shape: tuple[Any, ...],
    conditions: list[Any],
    local: ColumnElement[Any] | None,
    name: ColumnElement[Any],
) -> Select[Any]:
    """The page's rows, local first, then by distance, name and id.

    Two steps: the page is chosen on narrow columns (id and the sort keys), then only its
    rows are joined back and rendered. Rendering every candidate before the sort (the
    snapshot JSON, a few hundred per search) cost more than finding them.
    """
    point, near, include_inactive, documents, redact = shape[-5:]
    distance: ColumnElement[Any] = _distance(table) if point else null().cast(Float)
    if near:
        box = func.box(
            func.point(bindparam("west", type_=Float), bindparam("south", type_=Float)),
            func.point(bindparam("east", type_=Float), bindparam("north", type_=Float)),
        )
        conditions = [
            *conditions,
            # The same expression as the GiST index `ix_<table>_point`, so it is used.
            point_of(table).op("<@")(box),
            distance <= bindparam("radius_km", type_=Float),
        ]
    if not include_inactive:
        # Plain `active` (NOT NULL), not `active IS TRUE`: it matches the partial indexes.
        conditions.append(table.c.active)
    keys: list[Any] = [local.label("local")] if local is not None else []
    order: list[Any] = [local.desc()] if local is not None else []
    if point:
        order.append(distance.asc())
    hits = (
        select(table.c.id, *keys, distance.label("distance_km"), name.label("sort_name"))
        .where(and_(literal(True), *conditions))
        .order_by(*order, name, table.c.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("hits")
    )
    order = [hits.c.local.desc()] if local is not None else []
    if point:
        order.append(hits.c.distance_km.asc())
    columns: list[Any] = [_document(table, redact).label("document")] if documents else [table]
    return (
        select(*columns, hits.c.distance_km)
        .select_from(hits.join(table, table.c.id == hits.c.id))
        .order_by(*order, hits.c.sort_name, hits.c.id)
    )


@functools.lru_cache(maxsize=256)
def _professional_statement(shape: tuple[Any, ...]) -> Select[Any]:
    table = professionals
    specialties, act, departements, vendor, language, max_hours, external = shape[:7]
    conditions: list[Any] = []
    if specialties:
        conditions.append(table.c.specialty_codes.overlap(bindparam("specialties", type_=_TEXTS)))
    if act:
        conditions.append(bindparam("act", type_=Text) == any_(table.c.acts))
    if departements:
        conditions.append(table.c.departements.overlap(bindparam("departements", type_=_TEXTS)))
    if vendor:
        conditions.append(table.c.technical_vendor == bindparam("vendor", type_=Text))
    if language:
        conditions.append(bindparam("language", type_=Text) == any_(table.c.languages))
    if max_hours:
        conditions.append(
            and_(
                table.c.response_hours > 0,
                table.c.response_hours <= bindparam("max_hours", type_=Integer),
            )
        )
    if external:
        conditions.append(table.c.accepts_external_patients == bindparam("external", type_=Boolean))
    local: ColumnElement[Any] | None = None
    if shape[8]:
        ref = bindparam("local", type_=Text)
        # Coalesced: with no practice location `departement` is null, and a null would sort
        # first under DESC, ahead of the local rows.
        local = func.coalesce(
            or_(table.c.departement == ref, ref == any_(table.c.departements)), false()
        )
    return _page(table, shape, conditions, local, table.c.family_name)


@functools.lru_cache(maxsize=256)
def _site_statement(shape: tuple[Any, ...]) -> Select[Any]:
    table = sites
    specialties, _, departements, vendor, _, _, external, category = shape[:8]
    conditions: list[Any] = []
    if specialties:
        conditions.append(
            table.c.specialties_needed.overlap(bindparam("specialties", type_=_TEXTS))
        )
    if departements:
        conditions.append(table.c.departement == any_(bindparam("departements", type_=_TEXTS)))
    if vendor:
        conditions.append(table.c.technical_vendor == bindparam("vendor", type_=Text))
    if external:
        conditions.append(
            table.c.receives_external_patients == bindparam("external", type_=Boolean)
        )
    if category:
        conditions.append(table.c.category == bindparam("category", type_=Text))
    local: ColumnElement[Any] | None = None
    if shape[8]:
        local = table.c.departement == bindparam("local", type_=Text)
    return _page(table, shape, conditions, local, table.c.name)


def professional_query(criteria: Criteria) -> Query:
    return Query(_professional_statement(_shape(criteria)), _values(criteria))


def site_query(criteria: Criteria) -> Query:
    return Query(_site_statement(_shape(criteria)), _values(criteria))


@functools.lru_cache(maxsize=256)
def _driver_sql(
    statement: Select[Any], dialect: Dialect
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The statement as the driver's SQL text, its bind names in order and their defaults."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


async def run_documents(connection: AsyncConnection, query: Query) -> list[DocumentHit]:
    # The hot path sends the SQL text compiled once per shape: executing the Core statement
    # cost a cache-key walk and parameter processing per request, more than the query.
    # `exec_driver_sql` still goes through SQLAlchemy's error translation and invalidation.
    sql, names, defaults = _driver_sql(query.statement, connection.dialect)
    values = {**defaults, **query.parameters}
    result = await connection.exec_driver_sql(sql, tuple(values[name] for name in names))
    # Untyped text statement: its rows are (document, distance_km).
    rows = typing.cast(list[tuple[str, float | None]], result.all())
    return [DocumentHit(document, distance) for document, distance in rows]


@dataclass(frozen=True, slots=True)
class SitePoint:
    latitude: float
    longitude: float
    departement: str


_SITE_POINT = select(sites.c.latitude, sites.c.longitude, sites.c.departement).where(
    sites.c.id == bindparam("site_id")
)


async def site_point(connection: AsyncConnection, site_id: Any) -> SitePoint | None:
    row = (await connection.execute(_SITE_POINT, {"site_id": site_id})).first()
    return None if row is None else SitePoint(row.latitude, row.longitude, row.departement)


async def run(session: AsyncSession, query: Query) -> list[Hit]:
    rows = (await session.execute(query.statement, query.parameters)).all()
    return [
        Hit(
            StoredAggregate(
                row.id, row.version, row.active, dict(row.data), row.created_at, row.updated_at
            ),
            row.distance_km,
        )
        for row in rows
    ]
