"""Devices enrolled on kiosks (credentials), stored call-quality reports, alert acknowledgement.

Revision ID: 0003
Revises: 0002
Created: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "device",
        sa.Column("credential_id", UUID(as_uuid=True), nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("device_kind", sa.Text, nullable=False),
        sa.Column("kiosk_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        # SHA-256 of a 256-bit random secret: a slow password hash buys nothing at that entropy.
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("enrolled_at", _TZ, nullable=False),
        sa.Column("enrolled_by", sa.Text, nullable=False),
        sa.Column("revoked_at", _TZ, nullable=True),
        sa.Column("revoked_by", sa.Text, nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("credential_id", name="pk_device"),
    )
    # A device is active on one kiosk at a time (moving it: revoke, then enrol elsewhere).
    op.create_index(
        "uq_device_active_device_id",
        "device",
        ["device_id"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_index("ix_device_kiosk_id", "device", ["kiosk_id", "device_id"])
    op.create_table(
        "call_quality",
        sa.Column("kiosk_id", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("departement", sa.Text, nullable=False),
        sa.Column("session_id", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=True),
        sa.Column("measured_at", _TZ, nullable=False),
        sa.Column("received_at", _TZ, nullable=False),
        sa.Column("rtt_ms", sa.Integer, nullable=False),
        sa.Column("jitter_ms", sa.Integer, nullable=False),
        sa.Column("loss_ratio", sa.Float, nullable=False),
        sa.Column("bitrate_kbps", sa.Integer, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        # A kiosk resending the same report (same session, same instant) is stored once.
        sa.PrimaryKeyConstraint("kiosk_id", "session_id", "measured_at", name="pk_call_quality"),
    )
    op.create_index("ix_call_quality_session_id", "call_quality", ["session_id"])
    op.create_index("ix_call_quality_site_id", "call_quality", ["site_id", "measured_at"])
    op.add_column("alert", sa.Column("acknowledged_at", _TZ, nullable=True))
    op.add_column("alert", sa.Column("acknowledged_by", sa.Text, nullable=True))
    op.add_column("alert", sa.Column("acknowledgement_comment", sa.Text, nullable=True))


def downgrade() -> None:
    for column in ("acknowledgement_comment", "acknowledged_by", "acknowledged_at"):
        op.drop_column("alert", column)
    op.drop_table("call_quality")
    op.drop_table("device")
