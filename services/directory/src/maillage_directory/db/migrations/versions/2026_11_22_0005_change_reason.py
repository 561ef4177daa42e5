"""`change_history.reason`: why a change was made when it is not an edit (a republish).

Revision ID: 0005
Revises: 0004
Created: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a catalogue-only change, no table rewrite.
    op.add_column("change_history", sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("change_history", "reason")
