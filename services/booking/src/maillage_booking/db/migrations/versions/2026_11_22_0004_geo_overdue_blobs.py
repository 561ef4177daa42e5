"""Coordinates in the directory read model (distance search), the overdue mark of a
tele-expertise (recorded once by the sweep), attachments stored outside PostgreSQL.

Revision ID: 0004
Revises: 0003
Created: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A professional may practise in several places: parallel arrays, one entry per
    # practice location that has coordinates.
    op.execute(
        """ALTER TABLE responders
           ADD COLUMN latitudes double precision[] NOT NULL DEFAULT '{}',
           ADD COLUMN longitudes double precision[] NOT NULL DEFAULT '{}'"""
    )
    op.execute(
        """ALTER TABLE sites
           ADD COLUMN latitude double precision, ADD COLUMN longitude double precision"""
    )
    # due_at is stored (not computed) so that the sweep finds due requests by index.
    op.execute(
        """ALTER TABLE expertises
           ADD COLUMN due_at timestamptz, ADD COLUMN overdue_at timestamptz"""
    )
    op.execute("UPDATE expertises SET due_at = requested_at + make_interval(secs => delay_seconds)")
    op.execute("ALTER TABLE expertises ALTER COLUMN due_at SET NOT NULL")
    op.execute(
        "CREATE INDEX ix_expertises_waiting_due ON expertises (due_at)"
        " WHERE overdue_at IS NULL AND status IN ('requested', 'accepted')"
    )
    # New attachments keep only metadata and checksum here; the bytes live in the blob store.
    # Rows written before keep their bytes in `data` and are still served from it.
    op.execute(
        """ALTER TABLE attachments
           ADD COLUMN sha256 text, ALTER COLUMN data DROP NOT NULL"""
    )


def downgrade() -> None:
    op.execute("ALTER TABLE attachments DROP COLUMN sha256")
    op.execute("DROP INDEX IF EXISTS ix_expertises_waiting_due")
    op.execute("ALTER TABLE expertises DROP COLUMN due_at, DROP COLUMN overdue_at")
    op.execute("ALTER TABLE sites DROP COLUMN latitude, DROP COLUMN longitude")
    op.execute("ALTER TABLE responders DROP COLUMN latitudes, DROP COLUMN longitudes")
