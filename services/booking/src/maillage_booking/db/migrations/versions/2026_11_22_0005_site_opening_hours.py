"""Sites' opening hours in the directory read model (a cabin is booked only while its site
is open).

Revision ID: 0005
Revises: 0004
Created: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The directory's OpeningHours as published; NULL for sites known from snapshots older
    # than the hours (unknown: never a reason to refuse a booking).
    op.execute("ALTER TABLE sites ADD COLUMN opening_hours jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE sites DROP COLUMN opening_hours")
