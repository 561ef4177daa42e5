"""Professionals, sites, kiosks and the change history.

Revision ID: 0002
Revises: 0001
Created: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _common() -> list[sa.Column[object]]:
    return [
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    text_array = ARRAY(sa.Text)
    op.create_table(
        "professional",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("rpps", sa.String(11), nullable=False),
        sa.Column("family_name", sa.Text, nullable=False),
        sa.Column("specialty_codes", text_array, nullable=False),
        sa.Column("acts", text_array, nullable=False),
        sa.Column("departements", text_array, nullable=False),
        sa.Column("languages", text_array, nullable=False),
        sa.Column("technical_vendor", sa.Text, nullable=False),
        sa.Column("response_hours", sa.Integer, nullable=False),
        sa.Column("accepts_external_patients", sa.Boolean, nullable=False),
        sa.Column("departement", sa.String(3), nullable=True),
        sa.Column("latitude", sa.Float, nullable=True),
        sa.Column("longitude", sa.Float, nullable=True),
        *_common(),
        sa.PrimaryKeyConstraint("id", name="pk_professional"),
        sa.UniqueConstraint("rpps", name="uq_professional_rpps"),
    )
    op.create_index(
        "ix_professional_specialty_codes",
        "professional",
        ["specialty_codes"],
        postgresql_using="gin",
    )
    op.create_index(
        "ix_professional_departements", "professional", ["departements"], postgresql_using="gin"
    )
    op.create_index("ix_professional_latitude_longitude", "professional", ["latitude", "longitude"])
    op.create_table(
        "site",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("finess", sa.String(9), nullable=True),
        sa.Column("siret", sa.String(14), nullable=True),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("commune_insee", sa.String(5), nullable=False),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.Column("latitude", sa.Float, nullable=False),
        sa.Column("longitude", sa.Float, nullable=False),
        sa.Column("specialties_needed", text_array, nullable=False),
        sa.Column("technical_vendor", sa.Text, nullable=False),
        sa.Column("receives_external_patients", sa.Boolean, nullable=False),
        *_common(),
        sa.PrimaryKeyConstraint("id", name="pk_site"),
        sa.UniqueConstraint("finess", name="uq_site_finess"),
    )
    op.create_index("ix_site_departement", "site", ["departement"])
    op.create_index("ix_site_latitude_longitude", "site", ["latitude", "longitude"])
    op.create_table(
        "kiosk",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("site_id", sa.Uuid, nullable=False),
        sa.Column("credential_key_id", sa.Text, nullable=True),
        sa.Column("credential_hash", sa.Text, nullable=True),
        sa.Column("credential_revoked", sa.Boolean, nullable=False),
        *_common(),
        sa.PrimaryKeyConstraint("id", name="pk_kiosk"),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name="fk_kiosk_site_id_site"),
        sa.UniqueConstraint("credential_key_id", name="uq_kiosk_credential_key_id"),
    )
    op.create_index("ix_kiosk_site_id", "kiosk", ["site_id"])
    op.create_table(
        "change_history",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("aggregate", sa.String(20), nullable=False),
        sa.Column("aggregate_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("change", sa.String(20), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("diff", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_history"),
    )
    op.create_index("ix_change_history_aggregate_id", "change_history", ["aggregate_id", "version"])


def downgrade() -> None:
    for table in ("change_history", "kiosk", "site", "professional"):
        op.drop_table(table)
