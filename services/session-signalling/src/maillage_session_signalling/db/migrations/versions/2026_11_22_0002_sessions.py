"""Sessions and their participants.

Revision ID: 0002
Revises: 0001
Created: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AWARE = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.Uuid, primary_key=True),
        sa.Column("room_id", sa.String(64), nullable=False, unique=True),
        sa.Column("appointment_id", sa.String(64)),
        sa.Column("consultation_id", sa.String(64)),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("responder_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("specialty_code", sa.String(16), nullable=False, server_default=""),
        sa.Column("act", sa.Integer, nullable=False, server_default="0"),
        sa.Column("departement", sa.String(8), nullable=False, server_default=""),
        sa.Column("mode", sa.Integer, nullable=False, server_default="0"),
        sa.Column("assistance", sa.Integer, nullable=False, server_default="0"),
        sa.Column("resource_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("scheduled_start", _AWARE, nullable=False),
        sa.Column("scheduled_end", _AWARE, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("joined_roles", sa.Text, nullable=False, server_default=""),
        sa.Column("first_joined_at", _AWARE),
        sa.Column("waiting_since", _AWARE),
        sa.Column("admitted_at", _AWARE),
        sa.Column("started_at", _AWARE),
        sa.Column("ended_at", _AWARE),
        sa.Column("ended_by", sa.String(16)),
        sa.Column("missing_side", sa.String(16)),
        sa.Column("created_at", _AWARE, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index(
        "uq_sessions_active_appointment",
        "sessions",
        ["appointment_id"],
        unique=True,
        postgresql_where=sa.text("state <> 'revoked' AND appointment_id IS NOT NULL"),
    )
    op.create_index("ix_sessions_open_start", "sessions", ["state", "scheduled_start"])
    op.create_table(
        "session_participants",
        sa.Column(
            "session_id",
            sa.Uuid,
            sa.ForeignKey("sessions.session_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("participant_id", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("professional_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("joined_at", _AWARE, nullable=False),
        sa.Column("left_at", _AWARE),
        sa.Column("leave_reason", sa.String(32)),
        sa.Column("quality_level", sa.String(16)),
    )


def downgrade() -> None:
    op.drop_table("session_participants")
    op.drop_table("sessions")
