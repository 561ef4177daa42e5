# ruff: noqa: S608 - DDL assembled from constants.
"""Monthly rollups of teleconsultations and of acts per specialty, kept by triggers.

Each rollup cell is one (site, Paris calendar month): a trigger on `session` / `expertise`
recomputes the cells its statement touched (old and new rows) from the base rows, in the same
transaction. Recomputing instead of incrementing keeps the rollups equal to the base tables
under duplicates, out-of-order events and rebuilds; a per-site advisory lock serialises
concurrent recomputations of the same cells. Rows whose instant is unknown go to the month
'-infinity' (read only when the period is unbounded, as the base queries do).

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

_MONTH_START = "(c.month::timestamp AT TIME ZONE 'Europe/Paris')"
_MONTH_END = "((c.month + interval '1 month')::timestamp AT TIME ZONE 'Europe/Paris')"


def _in_cells(insert: str, column: str) -> str:
    """`insert` (with {cell}) twice: months by range (index-friendly), unknown instants apart."""
    bounded = (
        f"s.site_id = c.site_id AND c.month > '-infinity' "
        f"AND s.{column} >= {_MONTH_START} AND s.{column} < {_MONTH_END}"
    )
    unknown = f"s.site_id = c.site_id AND c.month = '-infinity' AND s.{column} IS NULL"
    return insert.format(cell=bounded) + ";\n" + insert.format(cell=unknown) + ";"


_TELECONSULTATION_CELLS = """INSERT INTO teleconsultation_month
        SELECT c.month, s.site_id, s.departement, s.specialty_code, s.mode, s.assistance,
               count(*)
        FROM (SELECT DISTINCT * FROM unnest(sites, months) AS u(site_id, month)) c
        JOIN session s ON {cell}
        WHERE s.act = 'teleconsultation' AND s.ended_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6"""
_SESSION_SPECIALTY_CELLS = """INSERT INTO specialty_month
        SELECT c.month, s.site_id, 'teleconsultation', s.specialty_code, s.responder_id,
               count(*)
        FROM (SELECT DISTINCT * FROM unnest(sites, months) AS u(site_id, month)) c
        JOIN session s ON {cell}
        WHERE s.act = 'teleconsultation' AND s.ended_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5"""
_EXPERTISE_CELLS = """INSERT INTO specialty_month
        SELECT c.month, s.site_id, f.source, s.specialty_code,
               -- Requests are counted per site only: no responder, far fewer rows.
               CASE WHEN f.source = 'expertise_answered' THEN s.responder_id ELSE '' END,
               count(*)
        FROM (SELECT DISTINCT * FROM unnest(sites, months) AS u(site_id, month)) c
        JOIN expertise s ON {cell}
        CROSS JOIN LATERAL (VALUES
            (CASE WHEN s.requested_at IS NOT NULL THEN 'expertise_requested' END),
            (CASE WHEN s.answered_at IS NOT NULL THEN 'expertise_answered' END)) AS f(source)
        WHERE f.source IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5"""

STATEMENTS = [
    """CREATE TABLE teleconsultation_month (
        month DATE NOT NULL,
        site_id VARCHAR NOT NULL,
        departement VARCHAR NOT NULL,
        specialty_code VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        assistance VARCHAR NOT NULL,
        sessions INTEGER NOT NULL,
        CONSTRAINT pk_teleconsultation_month
            PRIMARY KEY (site_id, month, departement, specialty_code, mode, assistance)
    )""",
    """CREATE INDEX ix_teleconsultation_month_month ON teleconsultation_month (month)
        INCLUDE (site_id, departement, specialty_code, mode, assistance, sessions)""",
    """CREATE TABLE specialty_month (
        month DATE NOT NULL,
        site_id VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        specialty_code VARCHAR NOT NULL,
        responder_id VARCHAR NOT NULL,
        acts INTEGER NOT NULL,
        CONSTRAINT pk_specialty_month
            PRIMARY KEY (site_id, month, source, specialty_code, responder_id)
    )""",
    """CREATE INDEX ix_specialty_month_month ON specialty_month (month, source)
        INCLUDE (site_id, specialty_code, responder_id, acts)""",
    "CREATE INDEX ix_session_site_started ON session (site_id, started_at)",
    "CREATE INDEX ix_expertise_site_requested ON expertise (site_id, requested_at)",
    f"""CREATE FUNCTION statistics_recompute_sessions(sites VARCHAR[], months DATE[])
        RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('statistics.session'), hashtext(site_id))
        FROM (SELECT DISTINCT site_id FROM unnest(sites) AS site_id ORDER BY 1) ordered;
        DELETE FROM teleconsultation_month t USING unnest(sites, months) AS c(site_id, month)
        WHERE t.site_id = c.site_id AND t.month = c.month;
        DELETE FROM specialty_month t USING unnest(sites, months) AS c(site_id, month)
        WHERE t.site_id = c.site_id AND t.month = c.month AND t.source = 'teleconsultation';
        {_in_cells(_TELECONSULTATION_CELLS, "started_at")}
        {_in_cells(_SESSION_SPECIALTY_CELLS, "started_at")}
    END $$""",
    f"""CREATE FUNCTION statistics_recompute_expertises(sites VARCHAR[], months DATE[])
        RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('statistics.expertise'), hashtext(site_id))
        FROM (SELECT DISTINCT site_id FROM unnest(sites) AS site_id ORDER BY 1) ordered;
        DELETE FROM specialty_month t USING unnest(sites, months) AS c(site_id, month)
        WHERE t.site_id = c.site_id AND t.month = c.month
              AND t.source IN ('expertise_requested', 'expertise_answered');
        {_in_cells(_EXPERTISE_CELLS, "requested_at")}
    END $$""",
]

_CELLS = """SELECT DISTINCT site_id, coalesce(
    date_trunc('month', {column} AT TIME ZONE 'Europe/Paris')::date, '-infinity'::date) AS month
    FROM {rows}"""

for _table, _column, _plural in (
    ("session", "started_at", "sessions"),
    ("expertise", "requested_at", "expertises"),
):
    for _op, _rows in (
        ("INSERT", ("new_rows",)),
        ("UPDATE", ("new_rows", "old_rows")),
        ("DELETE", ("old_rows",)),
    ):
        _union = " UNION ".join(_CELLS.format(column=_column, rows=rows) for rows in _rows)
        _referencing = " ".join(
            f"{'NEW' if rows == 'new_rows' else 'OLD'} TABLE AS {rows}" for rows in _rows
        )
        _name = f"statistics_{_table}_{_op.lower()}_rollup"
        STATEMENTS += [
            f"""CREATE FUNCTION {_name}() RETURNS trigger LANGUAGE plpgsql
                SET search_path FROM CURRENT AS $$
            BEGIN
                PERFORM statistics_recompute_{_plural}(sites, months) FROM (
                    SELECT array_agg(site_id) AS sites, array_agg(month) AS months
                    FROM ({_union}) cells) agg
                WHERE sites IS NOT NULL;
                RETURN NULL;
            END $$""",
            f"""CREATE TRIGGER {_name} AFTER {_op} ON {_table}
                REFERENCING {_referencing} FOR EACH STATEMENT EXECUTE FUNCTION {_name}()""",
        ]


# Existing rows (a schema migrated with data): fill every cell once.
STATEMENTS += [
    f"""SELECT statistics_recompute_{plural}(array_agg(site_id), array_agg(month))
        FROM ({_CELLS.format(column=column, rows=table)} GROUP BY 1, 2) cells
        HAVING count(*) > 0"""
    for table, column, plural in (
        ("session", "started_at", "sessions"),
        ("expertise", "requested_at", "expertises"),
    )
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("session", "expertise"):
        for kind in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER statistics_{table}_{kind}_rollup ON {table}")
            op.execute(f"DROP FUNCTION statistics_{table}_{kind}_rollup()")
    op.execute("DROP FUNCTION statistics_recompute_sessions(VARCHAR[], DATE[])")
    op.execute("DROP FUNCTION statistics_recompute_expertises(VARCHAR[], DATE[])")
    op.execute("DROP INDEX ix_session_site_started")
    op.execute("DROP INDEX ix_expertise_site_requested")
    op.drop_table("specialty_month")
    op.drop_table("teleconsultation_month")
