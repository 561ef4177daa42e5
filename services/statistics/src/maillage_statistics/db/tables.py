"""Projections (read models) built only from events.

Order tolerance: nothing here is a state machine. Each aggregate row keeps the *facts* its
events reported (one nullable instant per fact, the context of the latest event by event
time, the latest snapshot by version), so any arrival order and any duplicate give the same
row; the status is derived at query time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import DATEMULTIRANGE, UUID

from maillage_common.db import messaging_metadata, naming_metadata

metadata = naming_metadata()


def _at(name: str) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=True)


def _context() -> list[Column[object]]:
    """Context every booking/session event carries (fields 1-19 of the contracts)."""
    return [
        Column("site_id", String, nullable=False, server_default=""),
        Column("responder_id", String, nullable=False, server_default=""),
        Column("specialty_code", String, nullable=False, server_default=""),
        Column("act", String, nullable=False, server_default=""),
        Column("departement", String, nullable=False, server_default=""),
        # Event time of the event the context was taken from: a later event wins.
        _at("context_at"),
    ]


site = Table(
    "site",
    metadata,
    Column("site_id", String, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("name", String, nullable=False),
    Column("category", String, nullable=False),
    Column("deployment_model", String, nullable=False),
    Column("commune_insee", String, nullable=False),
    Column("departement", String, nullable=False, index=True),
    Column("rural", Boolean, nullable=False),
    Column("under_served", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("specialties_needed", ARRAY(String), nullable=False),
    _at("changed_at"),
)

professional = Table(
    "professional",
    metadata,
    Column("professional_id", String, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("profession_code", String, nullable=False),
    Column("specialty_codes", ARRAY(String), nullable=False),
    Column("departements", ARRAY(String), nullable=False),
    Column("active", Boolean, nullable=False),
    _at("changed_at"),
)

kiosk = Table(
    "kiosk",
    metadata,
    Column("kiosk_id", String, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("site_id", String, nullable=False),
    Column("active", Boolean, nullable=False),
    _at("changed_at"),
)

appointment = Table(
    "appointment",
    metadata,
    Column("appointment_id", String, primary_key=True),
    *_context(),
    Column("mode", String, nullable=False, server_default=""),
    Column("assistance", String, nullable=False, server_default=""),
    _at("start_at"),
    _at("held_at"),
    _at("booked_at"),
    _at("cancelled_at"),
    _at("fulfilled_at"),
    _at("no_show_at"),
    Column("session_id", String, nullable=False, server_default=""),
)

consultation = Table(
    "consultation",
    metadata,
    Column("consultation_id", String, primary_key=True),
    *_context(),
    Column("assistance", String, nullable=False, server_default=""),
    _at("requested_at"),
    _at("accepted_at"),
    Column("time_to_accept_seconds", Float, nullable=True),
    _at("expired_at"),
    Column("offers_made", Integer, nullable=False, server_default="0"),
)

expertise = Table(
    "expertise",
    metadata,
    Column("expertise_id", String, primary_key=True),
    *_context(),
    _at("requested_at"),
    Column("requested_delay_seconds", Float, nullable=True),
    _at("accepted_at"),
    _at("answered_at"),
    Column("response_seconds", Float, nullable=True),
    _at("rejected_at"),
    _at("closed_at"),
    Column("outcome", String, nullable=False, server_default=""),
)

# Also holds, as session 'appointment:<id>', each appointment of act teleconsultation fulfilled
# by hand that no ended session names (migration 0007): it is a teleconsultation too.
session = Table(
    "session",
    metadata,
    Column("session_id", String, primary_key=True),
    *_context(),
    Column("mode", String, nullable=False, server_default=""),
    Column("assistance", String, nullable=False, server_default=""),
    Column("appointment_id", String, nullable=False, server_default=""),
    Column("consultation_id", String, nullable=False, server_default=""),
    _at("scheduled_start"),
    _at("started_at"),
    _at("ended_at"),
    Column("live_seconds", Integer, nullable=True),
    Column("waiting_seconds", Integer, nullable=True),
    _at("no_show_at"),
    _at("failed_at"),
    Column("failure_reason", String, nullable=False, server_default=""),
    Index("ix_session_started_at", "started_at"),
    # Teleconsultations by period, read index-only by most indicators.
    Index(
        "ix_session_teleconsultation",
        "started_at",
        postgresql_include=[
            "site_id",
            "departement",
            "specialty_code",
            "mode",
            "assistance",
            "responder_id",
        ],
        postgresql_where=text("act = 'teleconsultation' AND ended_at IS NOT NULL"),
    ),
    Index("ix_session_site_id", "site_id"),
    # Whether an ended session names an appointment fulfilled by hand (migration 0007).
    Index(
        "ix_session_appointment", "appointment_id", postgresql_where=text("appointment_id <> ''")
    ),
)

quality_sample = Table(
    "quality_sample",
    metadata,
    # One row per event: the ce_id is the key, so a redelivery adds nothing.
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("source", String, nullable=False),
    Column("session_id", String, nullable=False),
    Column("site_id", String, nullable=False),
    Column("departement", String, nullable=False),
    _at("measured_at"),
    Column("level", String, nullable=False),
    Column("rtt_ms", Integer, nullable=False),
    Column("loss_ratio", Float, nullable=False),
)

measurement = Table(
    "measurement",
    metadata,
    Column("measurement_id", String, primary_key=True),
    Column("kiosk_id", String, nullable=False),
    Column("site_id", String, nullable=False),
    Column("departement", String, nullable=False),
    Column("loinc_code", String, nullable=False),
    Column("abnormal", Boolean, nullable=False),
    _at("measured_at"),
)

kiosk_health = Table(
    "kiosk_health",
    metadata,
    Column("kiosk_id", String, primary_key=True),
    Column("site_id", String, nullable=False),
    Column("departement", String, nullable=False),
    Column("status", String, nullable=False),
    _at("last_seen_at"),
)

alert = Table(
    "alert",
    metadata,
    Column("alert_id", String, primary_key=True),
    Column("kind", String, nullable=False, server_default=""),
    Column("severity", String, nullable=False, server_default=""),
    Column("kiosk_id", String, nullable=False, server_default=""),
    Column("site_id", String, nullable=False, server_default=""),
    Column("departement", String, nullable=False, server_default=""),
    _at("raised_at"),
    _at("cleared_at"),
    _at("context_at"),
)

PROJECTIONS = (
    site,
    professional,
    kiosk,
    appointment,
    consultation,
    expertise,
    session,
    quality_sample,
    measurement,
    kiosk_health,
    alert,
)

# Rollups: per (site, Paris month) cells (migration 0003) and per (site, Paris day) cells
# (migration 0004), recomputed from `session` and `expertise` by statement triggers in the same
# transaction. A period reads whole months from the monthly cells, whole days of its partial
# first/last month from the daily ones. Month '-infinity' holds rows without an instant; such
# rows have no day.
teleconsultation_month, teleconsultation_day = (
    Table(
        f"teleconsultation_{grain}",
        metadata,
        Column(grain, Date, primary_key=True),
        Column("site_id", String, primary_key=True),
        Column("departement", String, primary_key=True),
        Column("specialty_code", String, primary_key=True),
        Column("mode", String, primary_key=True),
        Column("assistance", String, primary_key=True),
        Column("sessions", Integer, nullable=False),
    )
    for grain in ("month", "day")
)

specialty_month, specialty_day = (
    Table(
        f"specialty_{grain}",
        metadata,
        Column(grain, Date, primary_key=True),
        Column("site_id", String, primary_key=True),
        # teleconsultation | expertise_requested | expertise_answered (dated by the request)
        Column("source", String, primary_key=True),
        Column("specialty_code", String, primary_key=True),
        Column("responder_id", String, primary_key=True),
        Column("acts", Integer, nullable=False),
    )
    for grain in ("month", "day")
)

# Tele-expertises by outcome, dated by the request (rows without a request instant: none).
expertise_month, expertise_day = (
    Table(
        f"expertise_{grain}",
        metadata,
        Column(grain, Date, primary_key=True),
        Column("site_id", String, primary_key=True),
        Column("departement", String, primary_key=True),
        Column("specialty_code", String, primary_key=True),
        Column("outcome", String, primary_key=True),
        Column("expertises", Integer, nullable=False),
    )
    for grain in ("month", "day")
)

# Service quality (migration 0005): per cell, counts of each `measure` and log-spaced histogram
# `bucket` (bucket b: [1.05^b, 1.05^(b+1)) seconds; counters use bucket 0).
quality_month, quality_day = (
    Table(
        f"quality_{grain}",
        metadata,
        Column(grain, Date, primary_key=True),
        Column("site_id", String, primary_key=True),
        Column("departement", String, primary_key=True),
        Column("specialty_code", String, primary_key=True),
        Column("measure", String, primary_key=True),
        Column("bucket", Integer, primary_key=True),
        Column("n", Integer, nullable=False),
    )
    for grain in ("month", "day")
)

# Per (site, Paris month / day): teleconsultations assisted / simple and tele-expertises
# requested (migration 0005), from the fine rollups above.
site_activity_month, site_activity_day = (
    Table(
        f"site_activity_{grain}",
        metadata,
        Column(grain, Date, primary_key=True),
        Column("site_id", String, primary_key=True),
        Column("assisted", Integer, nullable=False),
        Column("simple", Integer, nullable=False),
        Column("expertises", Integer, nullable=False),
    )
    for grain in ("month", "day")
)

# Per (specialty, site) and (specialty, responder): the Paris days with a teleconsultation or an
# answered tele-expertise (migration 0005), for the region-wide `specialties`.
specialty_presence = Table(
    "specialty_presence",
    metadata,
    Column("kind", String, primary_key=True),  # site | responder
    Column("specialty_code", String, primary_key=True),
    Column("who", String, primary_key=True),
    Column("days", DATEMULTIRANGE, nullable=False),
    # The months of `days` (migration 0006): small enough to be tested first.
    Column("months", DATEMULTIRANGE, Computed("statistics_presence_months(days)")),
)


def _per_departement(rollup: str, grain: str, *keys: Column[Any], value: str) -> Table:
    """A rollup summed over the sites of each département (migration 0005): read when no site
    attribute filters."""
    return Table(
        f"{rollup}_departement_{grain}",
        metadata,
        Column(grain, Date, primary_key=True),
        Column("departement", String, primary_key=True),
        Column("specialty_code", String, primary_key=True),
        *keys,
        Column(value, Integer, nullable=False),
    )


quality_departement_month, quality_departement_day = (
    _per_departement(
        "quality",
        grain,
        Column("measure", String, primary_key=True),
        Column("bucket", Integer, primary_key=True),
        value="n",
    )
    for grain in ("month", "day")
)
teleconsultation_departement_month, teleconsultation_departement_day = (
    _per_departement(
        "teleconsultation",
        grain,
        Column("mode", String, primary_key=True),
        Column("assistance", String, primary_key=True),
        value="sessions",
    )
    for grain in ("month", "day")
)
expertise_departement_month, expertise_departement_day = (
    _per_departement(
        "expertise", grain, Column("outcome", String, primary_key=True), value="expertises"
    )
    for grain in ("month", "day")
)

ROLLUPS = (
    teleconsultation_month,
    specialty_month,
    teleconsultation_day,
    specialty_day,
    expertise_month,
    expertise_day,
    quality_month,
    quality_day,
    specialty_presence,
    site_activity_month,
    site_activity_day,
    quality_departement_month,
    quality_departement_day,
    teleconsultation_departement_month,
    teleconsultation_departement_day,
    expertise_departement_month,
    expertise_departement_day,
)

MIGRATED_METADATA = [metadata, messaging_metadata]
