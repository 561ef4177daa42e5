# ruff: noqa: S608 - DDL assembled from constants.
"""The rebuild's rollup refresh in three parts: manual teleconsultations, then the month
rollups and the day rollups, which the rebuild runs side by side on two connections.

`statistics_refresh_rollups()` (0005, wrapped by 0007) recomputes every rollup in one
transaction, on one core: 40 % of a million-event rebuild, while the other core sat idle.
The month and the day rollups never read each other (a département or site-activity cell
reads the per-site rollup of its own grain; presence reads `specialty_day`), so each grain can
be emptied and recomputed in its own transaction once the manual rows are in place.

The statements are those of `statistics_refresh_rollups()`, built by the same functions of
revisions 0005 and 0007: their modules are loaded, not copied (they are frozen history, as
this one is). `statistics_refresh_rollups()` itself stays as it is, for migrations.

Revision ID: 0008
Revises: 0007
Created: 2026-11-22
"""

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRAINS = ("month", "day")


def _revision(filename: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"statistics_revision_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_QUALITY = _revision("2026_11_22_0005_quality_rollups.py")
_MANUAL = _revision("2026_11_22_0007_manual_teleconsultations.py")
_TARGET = re.compile(r"INSERT INTO (\w+)")


def _grain_of(statement: str) -> str:
    found = _TARGET.search(statement)
    assert found is not None, statement
    return found.group(1).rsplit("_", 1)[1]


def _lane(grain: str) -> str:
    """Every rollup of one grain emptied, then computed from the base rows."""
    tables = [
        f"{rollup}_{grain}" for rollup in ("teleconsultation", "specialty", "expertise", "quality")
    ]
    tables += [f"{rollup}_departement_{grain}" for rollup, _, _ in _QUALITY.DEPARTEMENT_ROLLUPS]
    tables.append(f"site_activity_{grain}")
    calls = [f"{s};" for s in _QUALITY._base_aggregates() if _grain_of(s) == grain]
    calls += [
        _QUALITY._departement_fill(rollup, grain, "PERFORM") + ";"
        for rollup, _, _ in _QUALITY.DEPARTEMENT_ROLLUPS
    ]
    calls.append(
        f"""PERFORM statistics_recompute_site_activity_{grain}(array_agg(site_id),
                                                               array_agg(cell))
            FROM (SELECT site_id, {grain} AS cell FROM teleconsultation_{grain}
                  UNION SELECT site_id, {grain} FROM specialty_{grain}
                  WHERE source = 'expertise_requested') c HAVING count(*) > 0;"""
    )
    if grain == "day":
        tables.append("specialty_presence")
        keys = _QUALITY._PRESENCE_KEYS.format(
            rows="specialty_day", sources=_QUALITY._PRESENCE_SOURCES
        )
        calls.append(
            f"""PERFORM statistics_recompute_presence(array_agg(kind), array_agg(specialty_code),
                                                      array_agg(who))
                FROM ({keys}) k HAVING count(*) > 0;"""
        )
    return f"TRUNCATE {', '.join(tables)};\n" + "\n".join(calls)


def _deferring(name: str, body: str) -> str:
    # The rollup triggers stay quiet while the function writes (as in the one-pass refresh).
    return f"""CREATE FUNCTION {name}() RETURNS void LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
    DECLARE
        deferred TEXT := coalesce(current_setting('statistics.defer_rollups', true), '');
    BEGIN
        PERFORM set_config('statistics.defer_rollups', 'on', true);
        {body}
        PERFORM set_config('statistics.defer_rollups', deferred, true);
    END $$"""


def upgrade() -> None:
    op.execute(
        _deferring(
            "statistics_refresh_manual_teleconsultations",
            f"""DELETE FROM session WHERE session_id LIKE '{_MANUAL._PREFIX}%';
            INSERT INTO session {_MANUAL._COLUMNS} {_MANUAL._MANUAL};""",
        )
    )
    for grain in GRAINS:
        op.execute(_deferring(f"statistics_refresh_{grain}_rollups", _lane(grain)))


def downgrade() -> None:
    for grain in GRAINS:
        op.execute(f"DROP FUNCTION statistics_refresh_{grain}_rollups()")
    op.execute("DROP FUNCTION statistics_refresh_manual_teleconsultations()")
