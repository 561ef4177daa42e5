from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    text,
)

from maillage_common.db import messaging_metadata, naming_metadata

metadata = naming_metadata()

SESSIONS = Table(
    "sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    # Unguessable (secrets.token_urlsafe(24)): knowing a session id does not open its room.
    Column("room_id", String(64), nullable=False, unique=True),
    Column("appointment_id", String(64)),
    Column("consultation_id", String(64)),
    Column("site_id", String(64), nullable=False),
    Column("responder_id", String(64), nullable=False, server_default=""),
    Column("specialty_code", String(16), nullable=False, server_default=""),
    Column("act", Integer, nullable=False, server_default="0"),
    Column("departement", String(8), nullable=False, server_default=""),
    Column("mode", Integer, nullable=False, server_default="0"),
    Column("assistance", Integer, nullable=False, server_default="0"),
    Column("resource_id", String(64), nullable=False, server_default=""),
    Column("scheduled_start", DateTime(timezone=True), nullable=False),
    Column("scheduled_end", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("joined_roles", Text, nullable=False, server_default=""),
    Column("first_joined_at", DateTime(timezone=True)),
    Column("waiting_since", DateTime(timezone=True)),
    Column("admitted_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("ended_by", String(16)),
    Column("missing_side", String(16)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    # One live (non-revoked) session per appointment: a redelivered AppointmentBooked is a no-op.
    Index(
        "uq_sessions_active_appointment",
        "appointment_id",
        unique=True,
        postgresql_where=text("state <> 'revoked' AND appointment_id IS NOT NULL"),
    ),
    Index("ix_sessions_open_start", "state", "scheduled_start"),
)

PARTICIPANTS = Table(
    "session_participants",
    metadata,
    Column(
        "session_id", Uuid, ForeignKey("sessions.session_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("participant_id", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("professional_id", String(64), nullable=False, server_default=""),
    Column("joined_at", DateTime(timezone=True), nullable=False),
    Column("left_at", DateTime(timezone=True)),
    Column("leave_reason", String(32)),
    Column("quality_level", String(16)),
)

INVITATIONS = Table(
    "session_invitations",
    metadata,
    Column("invitation_id", Uuid, primary_key=True),
    Column(
        "session_id",
        Uuid,
        ForeignKey("sessions.session_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("participant_id", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    # Directory id of the specialist, or the interpreter's reference: never a patient.
    Column("invitee_id", String(64), nullable=False),
    Column("invited_by", String(64), nullable=False),
    Column("invited_at", DateTime(timezone=True), nullable=False),
    Column("revoked_by", String(64)),
    Column("revoked_at", DateTime(timezone=True)),
)

# Frames too large for a NOTIFY payload (8000 bytes) wait here for the other replicas, which
# get only their id; rows are deleted after a minute (signalling frames are ephemeral).
RELAYED_FRAMES = Table(
    "relayed_frames",
    metadata,
    Column("frame_id", Uuid, primary_key=True),
    Column("payload", Text, nullable=False),
    Column(
        "created_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=text("now()"),
        index=True,
    ),
)

MIGRATED_METADATA = [metadata, messaging_metadata]
