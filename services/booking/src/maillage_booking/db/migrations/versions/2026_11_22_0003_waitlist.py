"""Waitlist: sites waiting for a responder's slot to be released.

Revision ID: 0003
Revises: 0002
Created: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """CREATE TABLE waitlist (
            id uuid PRIMARY KEY, responder_id text NOT NULL, site_id text NOT NULL,
            act integer NOT NULL, patient_ref text NOT NULL,
            window_start timestamptz NOT NULL, window_end timestamptz NOT NULL,
            status text NOT NULL, appointment_id uuid, created_by text NOT NULL,
            created_at timestamptz NOT NULL,
            CONSTRAINT ck_waitlist_window CHECK (window_end > window_start))"""
    )
    op.execute(
        "CREATE INDEX ix_waitlist_waiting ON waitlist (responder_id, created_at)"
        " WHERE status = 'waiting'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS waitlist")
