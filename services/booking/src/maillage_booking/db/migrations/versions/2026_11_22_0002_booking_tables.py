"""Booking tables: directory read model, schedules, appointments (no double booking),
idempotency keys, on-demand consultations and offers, tele-expertise, patients.

Revision ID: 0002
Revises: 0001
Created: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Concurrent migrations of several schemas may race to create the extension.
_BTREE_GIST = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
    CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
  END IF;
EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL;
END $$;
"""

_TABLES = [
    """CREATE TABLE responders (
        id text PRIMARY KEY, rpps text NOT NULL, specialty_codes text[] NOT NULL,
        acts integer[] NOT NULL, departements text[] NOT NULL, active boolean NOT NULL,
        version bigint NOT NULL, on_duty boolean NOT NULL DEFAULT false,
        last_offered_at timestamptz)""",
    "CREATE INDEX ix_responders_rpps ON responders (rpps)",
    """CREATE TABLE sites (
        id text PRIMARY KEY, name text NOT NULL, departement text NOT NULL,
        active boolean NOT NULL, version bigint NOT NULL)""",
    """CREATE TABLE kiosks (
        id text PRIMARY KEY, site_id text NOT NULL, active boolean NOT NULL,
        version bigint NOT NULL)""",
    """CREATE TABLE schedules (
        id uuid PRIMARY KEY, responder_id text NOT NULL UNIQUE, time_zone text NOT NULL,
        rules jsonb NOT NULL, updated_at timestamptz NOT NULL)""",
    # `blocking` is true while the row holds its time: booked, or held and not yet released.
    # Only blocking rows take part in the exclusion constraints, so cancelled, finished and
    # released holds never block; the use case releases expired holds in the booking
    # transaction before inserting.
    """CREATE TABLE appointments (
        id uuid PRIMARY KEY, site_id text NOT NULL, responder_id text NOT NULL,
        resource_id text, specialty_code text NOT NULL, act integer NOT NULL,
        departement text NOT NULL, patient_ref text NOT NULL, mode integer NOT NULL,
        assistance integer NOT NULL, status text NOT NULL,
        start_at timestamptz NOT NULL, end_at timestamptz NOT NULL,
        block_end timestamptz NOT NULL, held_until timestamptz,
        blocking boolean NOT NULL, consultation_id text, created_by text NOT NULL,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
        outcome_by text, session_id text, cancel_reason integer,
        CONSTRAINT ck_appointments_end_after_start CHECK (end_at > start_at),
        CONSTRAINT ex_appointments_responder EXCLUDE USING gist (
            responder_id WITH =, tstzrange(start_at, block_end, '[)') WITH &&
        ) WHERE (blocking),
        CONSTRAINT ex_appointments_resource EXCLUDE USING gist (
            resource_id WITH =, tstzrange(start_at, block_end, '[)') WITH &&
        ) WHERE (blocking AND resource_id IS NOT NULL))""",
    "CREATE INDEX ix_appointments_held ON appointments (held_until) WHERE status = 'held'",
    "CREATE INDEX ix_appointments_site ON appointments (site_id, start_at)",
    """CREATE TABLE idempotency_keys (
        scope text NOT NULL, key text NOT NULL, status integer NOT NULL, body jsonb NOT NULL,
        created_at timestamptz NOT NULL, PRIMARY KEY (scope, key))""",
    """CREATE TABLE consultations (
        id uuid PRIMARY KEY, site_id text NOT NULL, departement text NOT NULL,
        specialty_code text NOT NULL, act integer NOT NULL, urgency text NOT NULL,
        patient_ref text NOT NULL, assistance integer NOT NULL, resource_id text NOT NULL,
        status text NOT NULL, tier integer NOT NULL, offers_made integer NOT NULL,
        requested_at timestamptz NOT NULL, widen_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL, accepted_at timestamptz, responder_id text,
        appointment_id uuid)""",
    "CREATE INDEX ix_consultations_open ON consultations (widen_at) WHERE status = 'open'",
    """CREATE TABLE offers (
        consultation_id uuid NOT NULL REFERENCES consultations (id), responder_id text NOT NULL,
        attempt integer NOT NULL, offered_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL, PRIMARY KEY (consultation_id, responder_id))""",
    "CREATE INDEX ix_offers_responder ON offers (responder_id)",
    """CREATE TABLE expertises (
        id uuid PRIMARY KEY, site_id text NOT NULL, departement text NOT NULL,
        requester_id text NOT NULL, responder_id text NOT NULL, specialty_code text NOT NULL,
        patient_ref text NOT NULL, level integer NOT NULL, question text NOT NULL,
        clinical_context text NOT NULL, status text NOT NULL,
        requested_at timestamptz NOT NULL, delay_seconds integer NOT NULL,
        accepted_at timestamptz, answered_at timestamptz, report text,
        reject_reason integer, closed_at timestamptz, outcome integer)""",
    """CREATE TABLE attachments (
        id uuid PRIMARY KEY, expertise_id uuid NOT NULL REFERENCES expertises (id),
        filename text NOT NULL, content_type text NOT NULL, size integer NOT NULL,
        data bytea NOT NULL, created_at timestamptz NOT NULL)""",
    """CREATE TABLE patients (
        id uuid PRIMARY KEY, ins_digest text NOT NULL UNIQUE, patient_ref text NOT NULL UNIQUE,
        identity bytea NOT NULL, qualification text NOT NULL,
        consent_teleconsultation boolean NOT NULL, consent_at timestamptz, gp_rpps text,
        site_id text, created_at timestamptz NOT NULL)""",
]


def upgrade() -> None:
    op.execute(_BTREE_GIST)
    for statement in _TABLES:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "patients",
        "attachments",
        "expertises",
        "offers",
        "consultations",
        "idempotency_keys",
        "appointments",
        "schedules",
        "kiosks",
        "sites",
        "responders",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
