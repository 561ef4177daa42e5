"""Invitations of specialists and interpreters; large frames relayed between replicas.

Revision ID: 0003
Revises: 0002
Created: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AWARE = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "session_invitations",
        sa.Column("invitation_id", sa.Uuid, primary_key=True),
        sa.Column(
            "session_id",
            sa.Uuid,
            sa.ForeignKey("sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("invitee_id", sa.String(64), nullable=False),
        sa.Column("invited_by", sa.String(64), nullable=False),
        sa.Column("invited_at", _AWARE, nullable=False),
        sa.Column("revoked_by", sa.String(64)),
        sa.Column("revoked_at", _AWARE),
    )
    op.create_index("ix_session_invitations_session_id", "session_invitations", ["session_id"])
    op.create_table(
        "relayed_frames",
        sa.Column("frame_id", sa.Uuid, primary_key=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", _AWARE, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_relayed_frames_created_at", "relayed_frames", ["created_at"])


def downgrade() -> None:
    op.drop_table("relayed_frames")
    op.drop_table("session_invitations")
