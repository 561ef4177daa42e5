"""Projections: sites, professionals, kiosks, appointments, consultations, expertises,
sessions, quality samples, measurements, kiosk health, alerts.

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

PROJECTIONS = (
    "site",
    "professional",
    "kiosk",
    "appointment",
    "consultation",
    "expertise",
    "session",
    "quality_sample",
    "measurement",
    "kiosk_health",
    "alert",
)

DDL = """
CREATE TABLE site (
    site_id VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    name VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    deployment_model VARCHAR NOT NULL,
    commune_insee VARCHAR NOT NULL,
    departement VARCHAR NOT NULL,
    rural BOOLEAN NOT NULL,
    under_served BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    specialties_needed VARCHAR[] NOT NULL,
    changed_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_site PRIMARY KEY (site_id)
);
CREATE INDEX ix_site_departement ON site (departement);
CREATE TABLE professional (
    professional_id VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    profession_code VARCHAR NOT NULL,
    specialty_codes VARCHAR[] NOT NULL,
    departements VARCHAR[] NOT NULL,
    active BOOLEAN NOT NULL,
    changed_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_professional PRIMARY KEY (professional_id)
);
CREATE TABLE kiosk (
    kiosk_id VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    site_id VARCHAR NOT NULL,
    active BOOLEAN NOT NULL,
    changed_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_kiosk PRIMARY KEY (kiosk_id)
);
CREATE TABLE appointment (
    appointment_id VARCHAR NOT NULL,
    site_id VARCHAR DEFAULT '' NOT NULL,
    responder_id VARCHAR DEFAULT '' NOT NULL,
    specialty_code VARCHAR DEFAULT '' NOT NULL,
    act VARCHAR DEFAULT '' NOT NULL,
    departement VARCHAR DEFAULT '' NOT NULL,
    context_at TIMESTAMP WITH TIME ZONE,
    mode VARCHAR DEFAULT '' NOT NULL,
    assistance VARCHAR DEFAULT '' NOT NULL,
    start_at TIMESTAMP WITH TIME ZONE,
    held_at TIMESTAMP WITH TIME ZONE,
    booked_at TIMESTAMP WITH TIME ZONE,
    cancelled_at TIMESTAMP WITH TIME ZONE,
    fulfilled_at TIMESTAMP WITH TIME ZONE,
    no_show_at TIMESTAMP WITH TIME ZONE,
    session_id VARCHAR DEFAULT '' NOT NULL,
    CONSTRAINT pk_appointment PRIMARY KEY (appointment_id)
);
CREATE TABLE consultation (
    consultation_id VARCHAR NOT NULL,
    site_id VARCHAR DEFAULT '' NOT NULL,
    responder_id VARCHAR DEFAULT '' NOT NULL,
    specialty_code VARCHAR DEFAULT '' NOT NULL,
    act VARCHAR DEFAULT '' NOT NULL,
    departement VARCHAR DEFAULT '' NOT NULL,
    context_at TIMESTAMP WITH TIME ZONE,
    assistance VARCHAR DEFAULT '' NOT NULL,
    requested_at TIMESTAMP WITH TIME ZONE,
    accepted_at TIMESTAMP WITH TIME ZONE,
    time_to_accept_seconds FLOAT,
    expired_at TIMESTAMP WITH TIME ZONE,
    offers_made INTEGER DEFAULT '0' NOT NULL,
    CONSTRAINT pk_consultation PRIMARY KEY (consultation_id)
);
CREATE TABLE expertise (
    expertise_id VARCHAR NOT NULL,
    site_id VARCHAR DEFAULT '' NOT NULL,
    responder_id VARCHAR DEFAULT '' NOT NULL,
    specialty_code VARCHAR DEFAULT '' NOT NULL,
    act VARCHAR DEFAULT '' NOT NULL,
    departement VARCHAR DEFAULT '' NOT NULL,
    context_at TIMESTAMP WITH TIME ZONE,
    requested_at TIMESTAMP WITH TIME ZONE,
    requested_delay_seconds FLOAT,
    accepted_at TIMESTAMP WITH TIME ZONE,
    answered_at TIMESTAMP WITH TIME ZONE,
    response_seconds FLOAT,
    rejected_at TIMESTAMP WITH TIME ZONE,
    closed_at TIMESTAMP WITH TIME ZONE,
    outcome VARCHAR DEFAULT '' NOT NULL,
    CONSTRAINT pk_expertise PRIMARY KEY (expertise_id)
);
CREATE TABLE session (
    session_id VARCHAR NOT NULL,
    site_id VARCHAR DEFAULT '' NOT NULL,
    responder_id VARCHAR DEFAULT '' NOT NULL,
    specialty_code VARCHAR DEFAULT '' NOT NULL,
    act VARCHAR DEFAULT '' NOT NULL,
    departement VARCHAR DEFAULT '' NOT NULL,
    context_at TIMESTAMP WITH TIME ZONE,
    mode VARCHAR DEFAULT '' NOT NULL,
    assistance VARCHAR DEFAULT '' NOT NULL,
    appointment_id VARCHAR DEFAULT '' NOT NULL,
    consultation_id VARCHAR DEFAULT '' NOT NULL,
    scheduled_start TIMESTAMP WITH TIME ZONE,
    started_at TIMESTAMP WITH TIME ZONE,
    ended_at TIMESTAMP WITH TIME ZONE,
    live_seconds INTEGER,
    waiting_seconds INTEGER,
    no_show_at TIMESTAMP WITH TIME ZONE,
    failed_at TIMESTAMP WITH TIME ZONE,
    failure_reason VARCHAR DEFAULT '' NOT NULL,
    CONSTRAINT pk_session PRIMARY KEY (session_id)
);
CREATE INDEX ix_session_site_id ON session (site_id);
CREATE INDEX ix_session_started_at ON session (started_at);
CREATE INDEX ix_session_teleconsultation ON session (started_at)
    INCLUDE (site_id, departement, specialty_code, mode, assistance, responder_id)
    WHERE act = 'teleconsultation' AND ended_at IS NOT NULL;
CREATE TABLE quality_sample (
    event_id UUID NOT NULL,
    source VARCHAR NOT NULL,
    session_id VARCHAR NOT NULL,
    site_id VARCHAR NOT NULL,
    departement VARCHAR NOT NULL,
    measured_at TIMESTAMP WITH TIME ZONE,
    level VARCHAR NOT NULL,
    rtt_ms INTEGER NOT NULL,
    loss_ratio FLOAT NOT NULL,
    CONSTRAINT pk_quality_sample PRIMARY KEY (event_id)
);
CREATE TABLE measurement (
    measurement_id VARCHAR NOT NULL,
    kiosk_id VARCHAR NOT NULL,
    site_id VARCHAR NOT NULL,
    departement VARCHAR NOT NULL,
    loinc_code VARCHAR NOT NULL,
    abnormal BOOLEAN NOT NULL,
    measured_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_measurement PRIMARY KEY (measurement_id)
);
CREATE TABLE kiosk_health (
    kiosk_id VARCHAR NOT NULL,
    site_id VARCHAR NOT NULL,
    departement VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    last_seen_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_kiosk_health PRIMARY KEY (kiosk_id)
);
CREATE TABLE alert (
    alert_id VARCHAR NOT NULL,
    kind VARCHAR DEFAULT '' NOT NULL,
    severity VARCHAR DEFAULT '' NOT NULL,
    kiosk_id VARCHAR DEFAULT '' NOT NULL,
    site_id VARCHAR DEFAULT '' NOT NULL,
    departement VARCHAR DEFAULT '' NOT NULL,
    raised_at TIMESTAMP WITH TIME ZONE,
    cleared_at TIMESTAMP WITH TIME ZONE,
    context_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_alert PRIMARY KEY (alert_id)
);
"""


def upgrade() -> None:
    for statement in DDL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(PROJECTIONS):
        op.drop_table(table)
