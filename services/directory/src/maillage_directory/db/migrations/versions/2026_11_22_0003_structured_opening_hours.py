"""Structured opening hours; gériatrie is SM18 in TRE_R38 (SM53 is a general practice code).

Sites stored `opening_hours` as free OSM text: the common subset is converted to weekly
ranges, anything else is kept verbatim as the hours' `note` (nothing is lost). Rows are
rewritten in place without a version bump, so read models elsewhere keep the old snapshot
(and the old SM53 code) until `maillage-directory republish` runs (see the README).

Revision ID: 0003
Revises: 0002
Created: 2026-11-22
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from maillage_directory.domain.errors import InvalidValueError
from maillage_directory.domain.opening_hours import OpeningHours, parse_osm, to_osm

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SET_HOURS = sa.text(
    "UPDATE site SET data = jsonb_set(data, '{opening_hours}', CAST(:hours AS jsonb)) "
    "WHERE id = :id"
)


def _structured(text: str) -> OpeningHours:
    if not text.strip():
        return OpeningHours()
    try:
        return parse_osm(text)
    except InvalidValueError:
        return OpeningHours(note=text[:500])


def _replace_code(table: str, column: str, old: str, new: str) -> None:
    op.execute(
        f"UPDATE {table} SET {column} = ARRAY(SELECT DISTINCT unnest(array_replace({column}, "  # noqa: S608
        f"'{old}', '{new}')) ORDER BY 1), "
        f"data = jsonb_set(data, '{{{column}}}', to_jsonb(ARRAY(SELECT DISTINCT "
        f"unnest(array_replace({column}, '{old}', '{new}')) ORDER BY 1))) "
        f"WHERE '{old}' = ANY({column})"
    )


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT id, data->>'opening_hours' FROM site "
            "WHERE jsonb_typeof(data->'opening_hours') IS DISTINCT FROM 'object'"
        )
    ).all()
    for site_id, text in rows:
        hours = _structured(text or "")
        connection.execute(_SET_HOURS, {"id": site_id, "hours": hours.model_dump_json()})
    # The list 2026.11.1 used SM53 for gériatrie; TRE_R38 says SM18 (SM53 is "Spécialiste
    # en Médecine générale").
    _replace_code("professional", "specialty_codes", "SM53", "SM18")
    _replace_code("site", "specialties_needed", "SM53", "SM18")


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, data->>'opening_hours' FROM site")).all()
    for site_id, raw in rows:
        hours = OpeningHours.model_validate_json(raw or "{}")
        text = to_osm(hours) or hours.note
        connection.execute(_SET_HOURS, {"id": site_id, "hours": json.dumps(text)})
    _replace_code("professional", "specialty_codes", "SM18", "SM53")
    _replace_code("site", "specialties_needed", "SM18", "SM53")
