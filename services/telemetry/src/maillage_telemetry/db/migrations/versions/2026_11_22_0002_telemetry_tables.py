"""Telemetry tables: ingest keys, consent, measurements (BRIN), kiosk health, alerts, sites.

Revision ID: 0002
Revises: 0001
Created: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "measurement_key",
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("loinc_code", sa.Text, nullable=False),
        sa.Column("measured_at", _TZ, nullable=False),
        sa.Column("ingested_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint(
            "device_id", "loinc_code", "measured_at", name="pk_measurement_key"
        ),
    )
    op.create_table(
        "consent",
        sa.Column("patient_ref", sa.Text, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("recorded_at", _TZ, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("patient_ref", name="pk_consent"),
    )
    op.create_table(
        "measurement",
        sa.Column("measurement_id", UUID(as_uuid=True), nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("device_kind", sa.Text, nullable=False),
        sa.Column("kiosk_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("departement", sa.Text, nullable=False),
        sa.Column("patient_ref", sa.Text, nullable=False),
        sa.Column("loinc_code", sa.Text, nullable=False),
        sa.Column("ucum_unit", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("components", JSONB, nullable=True),
        sa.Column("measured_at", _TZ, nullable=False),
        sa.Column("received_at", _TZ, nullable=False),
        # When the row was written (not the transaction start): ingest-to-queryable latency.
        sa.Column("stored_at", _TZ, nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("abnormal", sa.Boolean, nullable=False),
        sa.Column("session_id", sa.Text, nullable=True),
        sa.UniqueConstraint(
            "device_id", "loinc_code", "measured_at", name="uq_measurement_reading"
        ),
    )
    # Measurements arrive roughly in time order: a BRIN index stays tiny and cheap to
    # maintain at high insert rates, and serves time-range scans.
    op.create_index(
        "ix_measurement_measured_at_brin", "measurement", ["measured_at"], postgresql_using="brin"
    )
    op.create_index("ix_measurement_patient_ref", "measurement", ["patient_ref", "measured_at"])
    op.create_table(
        "site",
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("departement", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("site_id", name="pk_site"),
    )
    op.create_table(
        "kiosk",
        sa.Column("kiosk_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("credential_revoked", sa.Boolean, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("kiosk_id", name="pk_kiosk"),
    )
    op.create_table(
        "kiosk_state",
        sa.Column("kiosk_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("reported_status", sa.Text, nullable=False),
        sa.Column("software_version", sa.Text, nullable=False),
        sa.Column("network_quality", sa.Text, nullable=True),
        sa.Column("rtt_ms", sa.Integer, nullable=True),
        sa.Column("peripherals", JSONB, nullable=False),
        sa.Column("last_heartbeat_at", _TZ, nullable=False),
        sa.Column("offline", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.PrimaryKeyConstraint("kiosk_id", name="pk_kiosk_state"),
    )
    op.create_table(
        "heartbeat",
        sa.Column("kiosk_id", sa.Text, nullable=False),
        sa.Column("received_at", _TZ, nullable=False),
        sa.Column("sent_at", _TZ, nullable=False),
        sa.Column("reported_status", sa.Text, nullable=False),
        sa.Column("software_version", sa.Text, nullable=False),
        sa.Column("network_quality", sa.Text, nullable=True),
        sa.Column("rtt_ms", sa.Integer, nullable=True),
        sa.Column("peripherals", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("kiosk_id", "received_at", name="pk_heartbeat"),
    )
    op.create_table(
        "alert",
        sa.Column("alert_id", UUID(as_uuid=True), nullable=False),
        sa.Column("dedup_key", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("kiosk_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("departement", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("device_kind", sa.Text, nullable=False),
        sa.Column("patient_ref", sa.Text, nullable=False),
        sa.Column("measurement_id", sa.Text, nullable=False),
        sa.Column("loinc_code", sa.Text, nullable=False),
        sa.Column("ucum_unit", sa.Text, nullable=False),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("raised_at", _TZ, nullable=False),
        sa.Column("cleared_at", _TZ, nullable=True),
        sa.Column("clear_reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alert"),
    )
    # One open alert per condition, enforced by the database even across replicas.
    op.create_index(
        "uq_alert_open_dedup_key",
        "alert",
        ["dedup_key"],
        unique=True,
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
    op.create_index("ix_alert_kiosk_id", "alert", ["kiosk_id", "raised_at"])


def downgrade() -> None:
    for table in (
        "alert",
        "heartbeat",
        "kiosk_state",
        "kiosk",
        "site",
        "measurement",
        "consent",
        "measurement_key",
    ):
        op.drop_table(table)
