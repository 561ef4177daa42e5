"""The directory's tables: each aggregate's full state in `data` (JSONB, the snapshot the
API and events show), plus the columns search filters and sorts on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from maillage_common.db import messaging_metadata, naming_metadata

metadata = naming_metadata()


def _common() -> list[Column[object]]:
    return [
        Column("version", BigInteger, nullable=False),
        Column("active", Boolean, nullable=False),
        Column("data", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    ]


professionals = Table(
    "professional",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("rpps", String(11), nullable=False, unique=True),
    Column("family_name", Text, nullable=False),
    Column("specialty_codes", ARRAY(Text), nullable=False),
    Column("acts", ARRAY(Text), nullable=False),
    Column("departements", ARRAY(Text), nullable=False),
    Column("languages", ARRAY(Text), nullable=False),
    Column("technical_vendor", Text, nullable=False),
    Column("response_hours", Integer, nullable=False),
    Column("accepts_external_patients", Boolean, nullable=False),
    # The first practice location is the professional's reference point for distances.
    Column("departement", String(3), nullable=True),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    *_common(),
    # No GIN pending list: rows are written rarely and searched constantly (migration 0004).
    Index(
        "ix_professional_specialty_codes",
        "specialty_codes",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    ),
    Index(
        "ix_professional_departements",
        "departements",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    ),
    # Searches without a point list active rows by name (migration 0004).
    Index(
        "ix_professional_active_family_name",
        "family_name",
        "id",
        postgresql_where=text("active"),
    ),
)

sites = Table(
    "site",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("finess", String(9), nullable=True, unique=True),
    Column("siret", String(14), nullable=True),
    Column("category", Text, nullable=False),
    Column("commune_insee", String(5), nullable=False),
    Column("departement", String(3), nullable=False),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("specialties_needed", ARRAY(Text), nullable=False),
    Column("technical_vendor", Text, nullable=False),
    Column("receives_external_patients", Boolean, nullable=False),
    *_common(),
    Index("ix_site_departement", "departement"),
    Index(
        "ix_site_specialties_needed",
        "specialties_needed",
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    ),
)


def point(table: Table) -> ColumnElement[Any]:
    """The row's location as a PostgreSQL `point` (x = longitude): the GiST-indexed form."""
    result: ColumnElement[Any] = func.point(table.c.longitude, table.c.latitude)
    return result


# Two-dimensional "inside this box" lookups for the distance prefilter (migration 0004).
Index("ix_professional_point", point(professionals), postgresql_using="gist")
Index("ix_site_point", point(sites), postgresql_using="gist")

kiosks = Table(
    "kiosk",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("site_id", Uuid, ForeignKey("site.id"), nullable=False, index=True),
    # The kiosk's service identity: a public key id and a hash of its secret (never the secret).
    Column("credential_key_id", Text, nullable=True, unique=True),
    Column("credential_hash", Text, nullable=True),
    Column("credential_revoked", Boolean, nullable=False),
    *_common(),
)

changes = Table(
    "change_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("aggregate", String(20), nullable=False),
    Column("aggregate_id", Uuid, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("change", String(20), nullable=False),
    Column("actor", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    # {field: [before, after]} for the top-level fields that changed.
    Column("diff", JSONB, nullable=False),
    # Why, when the change is not an edit of its own (a republish names its cause).
    Column("reason", Text, nullable=True),
    Index("ix_change_history_aggregate_id", "aggregate_id", "version"),
)

MIGRATED_METADATA = [metadata, messaging_metadata]
