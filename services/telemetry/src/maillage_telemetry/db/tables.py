"""The telemetry schema: ingest keys, consent, measurements, kiosk health, alerts, read model."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from maillage_common.db import messaging_metadata, naming_metadata

metadata = naming_metadata()


def _at(name: str, *, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


# Written at ingest, in the transaction that records the batch event: the synchronous
# answer "duplicate" comes from here, before anything reaches Kafka.
MEASUREMENT_KEY = Table(
    "measurement_key",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("loinc_code", Text, nullable=False),
    _at("measured_at"),
    _at("ingested_at"),
    PrimaryKeyConstraint("device_id", "loinc_code", "measured_at"),
)

CONSENT = Table(
    "consent",
    metadata,
    Column("patient_ref", Text, primary_key=True),
    Column("granted", Boolean, nullable=False),
    _at("recorded_at"),
    Column("recorded_by", Text, nullable=False),
)

MEASUREMENT = Table(
    "measurement",
    metadata,
    Column("measurement_id", UUID(as_uuid=True), nullable=False),
    Column("device_id", Text, nullable=False),
    Column("device_kind", Text, nullable=False),
    Column("kiosk_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("departement", Text, nullable=False),
    Column("patient_ref", Text, nullable=False),
    Column("loinc_code", Text, nullable=False),
    Column("ucum_unit", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("components", JSONB, nullable=True),
    _at("measured_at"),
    _at("received_at"),
    Column(
        "stored_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=text("clock_timestamp()"),
    ),
    Column("abnormal", Boolean, nullable=False),
    Column("session_id", Text, nullable=True),
    UniqueConstraint("device_id", "loinc_code", "measured_at", name="uq_measurement_reading"),
    Index("ix_measurement_measured_at_brin", "measured_at", postgresql_using="brin"),
    Index("ix_measurement_patient_ref", "patient_ref", "measured_at"),
)

SITE = Table(
    "site",
    metadata,
    Column("site_id", Text, primary_key=True),
    Column("departement", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
)

KIOSK = Table(
    "kiosk",
    metadata,
    Column("kiosk_id", Text, primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("credential_revoked", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
)

KIOSK_STATE = Table(
    "kiosk_state",
    metadata,
    Column("kiosk_id", Text, primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("reported_status", Text, nullable=False),
    Column("software_version", Text, nullable=False),
    Column("network_quality", Text, nullable=True),
    Column("rtt_ms", Integer, nullable=True),
    Column("peripherals", JSONB, nullable=False),
    _at("last_heartbeat_at"),
    Column("offline", Boolean, nullable=False, server_default=text("false")),
)

HEARTBEAT = Table(
    "heartbeat",
    metadata,
    Column("kiosk_id", Text, nullable=False),
    _at("received_at"),
    _at("sent_at"),
    Column("reported_status", Text, nullable=False),
    Column("software_version", Text, nullable=False),
    Column("network_quality", Text, nullable=True),
    Column("rtt_ms", Integer, nullable=True),
    Column("peripherals", JSONB, nullable=False),
    PrimaryKeyConstraint("kiosk_id", "received_at"),
)

ALERT = Table(
    "alert",
    metadata,
    Column("alert_id", UUID(as_uuid=True), primary_key=True),
    # One open alert per condition (see domain.alerts.*_key): the storm guard.
    Column("dedup_key", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("kiosk_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("departement", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("device_kind", Text, nullable=False),
    Column("patient_ref", Text, nullable=False),
    Column("measurement_id", Text, nullable=False),
    Column("loinc_code", Text, nullable=False),
    Column("ucum_unit", Text, nullable=False),
    Column("threshold", Float, nullable=True),
    Column("value", Float, nullable=True),
    _at("raised_at"),
    _at("cleared_at", nullable=True),
    Column("clear_reason", Text, nullable=True),
    # Acknowledged: no longer open for people, still the holder of its condition (dedup).
    _at("acknowledged_at", nullable=True),
    Column("acknowledged_by", Text, nullable=True),
    Column("acknowledgement_comment", Text, nullable=True),
    Index(
        "uq_alert_open_dedup_key",
        "dedup_key",
        unique=True,
        postgresql_where=text("cleared_at IS NULL"),
    ),
    Index("ix_alert_kiosk_id", "kiosk_id", "raised_at"),
)

# A connected device enrolled on a kiosk, with its own credential. One row per enrolment:
# revoking keeps the row (who, when, why); re-enrolling makes a new credential.
DEVICE = Table(
    "device",
    metadata,
    Column("credential_id", UUID(as_uuid=True), primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("device_kind", Text, nullable=False),
    Column("kiosk_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False),
    _at("enrolled_at"),
    Column("enrolled_by", Text, nullable=False),
    _at("revoked_at", nullable=True),
    Column("revoked_by", Text, nullable=True),
    Column("revoke_reason", Text, nullable=True),
    Index(
        "uq_device_active_device_id",
        "device_id",
        unique=True,
        postgresql_where=text("revoked_at IS NULL"),
    ),
    Index("ix_device_kiosk_id", "kiosk_id", "device_id"),
)

CALL_QUALITY = Table(
    "call_quality",
    metadata,
    Column("kiosk_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("departement", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("role", Text, nullable=True),
    _at("measured_at"),
    _at("received_at"),
    Column("rtt_ms", Integer, nullable=False),
    Column("jitter_ms", Integer, nullable=False),
    Column("loss_ratio", Float, nullable=False),
    Column("bitrate_kbps", Integer, nullable=False),
    Column("level", Text, nullable=False),
    PrimaryKeyConstraint("kiosk_id", "session_id", "measured_at"),
    Index("ix_call_quality_session_id", "session_id"),
    Index("ix_call_quality_site_id", "site_id", "measured_at"),
)

MIGRATED_METADATA = [metadata, messaging_metadata]
