"""Booking's tables (the migration in db/migrations/versions creates them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Integer,
    LargeBinary,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from maillage_common.db import messaging_metadata, naming_metadata

metadata = naming_metadata()


def _ts(name: str, nullable: bool = True) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


responders = Table(
    "responders",
    metadata,
    Column("id", Text, primary_key=True),
    Column("rpps", Text, nullable=False),
    Column("specialty_codes", ARRAY(Text), nullable=False),
    Column("acts", ARRAY(Integer), nullable=False),
    Column("departements", ARRAY(Text), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("on_duty", Boolean, nullable=False),
    _ts("last_offered_at"),
    # One entry per practice location with coordinates (WGS 84, parallel arrays).
    Column("latitudes", ARRAY(Double), nullable=False, server_default="{}"),
    Column("longitudes", ARRAY(Double), nullable=False, server_default="{}"),
)

sites = Table(
    "sites",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("departement", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("latitude", Double),
    Column("longitude", Double),
    # The directory's OpeningHours as published (NULL: unknown, a snapshot from before hours).
    Column("opening_hours", JSONB),
)

kiosks = Table(
    "kiosks",
    metadata,
    Column("id", Text, primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("responder_id", Text, nullable=False, unique=True),
    Column("time_zone", Text, nullable=False),
    Column("rules", JSONB, nullable=False),
    _ts("updated_at", False),
)

appointments = Table(
    "appointments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("responder_id", Text, nullable=False),
    Column("resource_id", Text),
    Column("specialty_code", Text, nullable=False),
    Column("act", Integer, nullable=False),
    Column("departement", Text, nullable=False),
    Column("patient_ref", Text, nullable=False),
    Column("mode", Integer, nullable=False),
    Column("assistance", Integer, nullable=False),
    Column("status", Text, nullable=False),
    _ts("start_at", False),
    _ts("end_at", False),
    _ts("block_end", False),
    _ts("held_until"),
    Column("blocking", Boolean, nullable=False),
    Column("consultation_id", Text),
    Column("created_by", Text, nullable=False),
    _ts("created_at", False),
    _ts("updated_at", False),
    Column("outcome_by", Text),
    Column("session_id", Text),
    Column("cancel_reason", Integer),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("status", Integer, nullable=False),
    Column("body", JSONB, nullable=False),
    _ts("created_at", False),
)

consultations = Table(
    "consultations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("departement", Text, nullable=False),
    Column("specialty_code", Text, nullable=False),
    Column("act", Integer, nullable=False),
    Column("urgency", Text, nullable=False),
    Column("patient_ref", Text, nullable=False),
    Column("assistance", Integer, nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("tier", Integer, nullable=False),
    Column("offers_made", Integer, nullable=False),
    _ts("requested_at", False),
    _ts("widen_at", False),
    _ts("expires_at", False),
    _ts("accepted_at"),
    Column("responder_id", Text),
    Column("appointment_id", UUID(as_uuid=True)),
)

offers = Table(
    "offers",
    metadata,
    Column("consultation_id", UUID(as_uuid=True), primary_key=True),
    Column("responder_id", Text, primary_key=True),
    Column("attempt", Integer, nullable=False),
    _ts("offered_at", False),
    _ts("expires_at", False),
)

expertises = Table(
    "expertises",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("departement", Text, nullable=False),
    Column("requester_id", Text, nullable=False),
    Column("responder_id", Text, nullable=False),
    Column("specialty_code", Text, nullable=False),
    Column("patient_ref", Text, nullable=False),
    Column("level", Integer, nullable=False),
    Column("question", Text, nullable=False),
    Column("clinical_context", Text, nullable=False),
    Column("status", Text, nullable=False),
    _ts("requested_at", False),
    Column("delay_seconds", Integer, nullable=False),
    _ts("accepted_at"),
    _ts("answered_at"),
    Column("report", Text),
    Column("reject_reason", Integer),
    _ts("closed_at"),
    Column("outcome", Integer),
    _ts("due_at", False),
    # Set once by the overdue sweep, in the transaction that records ExpertiseOverdue.
    _ts("overdue_at"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("expertise_id", UUID(as_uuid=True), nullable=False),
    Column("filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size", Integer, nullable=False),
    # Content address in the blob store (hex SHA-256); rows from before the store keep `data`.
    Column("sha256", Text),
    Column("data", LargeBinary),
    _ts("created_at", False),
)

patients = Table(
    "patients",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("ins_digest", Text, nullable=False, unique=True),
    Column("patient_ref", Text, nullable=False, unique=True),
    Column("identity", LargeBinary, nullable=False),
    Column("qualification", Text, nullable=False),
    Column("consent_teleconsultation", Boolean, nullable=False),
    _ts("consent_at"),
    Column("gp_rpps", Text),
    Column("site_id", Text),
    _ts("created_at", False),
)

waitlist = Table(
    "waitlist",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("responder_id", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("act", Integer, nullable=False),
    Column("patient_ref", Text, nullable=False),
    _ts("window_start", False),
    _ts("window_end", False),
    Column("status", Text, nullable=False),
    Column("appointment_id", UUID(as_uuid=True)),
    Column("created_by", Text, nullable=False),
    _ts("created_at", False),
)

MIGRATED_METADATA = [metadata, messaging_metadata]
