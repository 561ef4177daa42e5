# ruff: noqa: S608 - DDL assembled from constants.
"""Daily rollups (site x Paris day) beside the monthly ones, kept by the same kind of triggers;
tele-expertises by outcome per month and per day; indexes for the specialties probes.

A period reads its whole Paris months from the monthly rollups, the whole days of its partial
first/last month from these, and only its partial first/last day from the base rows. Each
cell is recomputed from the base rows by a statement trigger on `session` / `expertise`
(never incremented), so the rollups stay equal to the base tables under duplicates, any
order, moved or deleted rows and rebuilds. The recomputation takes the same per-site advisory
locks as the monthly one (re-entrant in a transaction, same order): no new deadlock. Rows
without an instant have no day: only an unbounded period counts them, from the monthly rollup.

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

_CELL = """s.site_id = c.site_id
        AND s.{column} >= (c.day::timestamp AT TIME ZONE 'Europe/Paris')
        AND s.{column} < ((c.day + 1)::timestamp AT TIME ZONE 'Europe/Paris')"""
_DAYS = "(SELECT DISTINCT * FROM unnest(sites, days) AS u(site_id, day)) c"

STATEMENTS = [
    """CREATE TABLE teleconsultation_day (
        day DATE NOT NULL,
        site_id VARCHAR NOT NULL,
        departement VARCHAR NOT NULL,
        specialty_code VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        assistance VARCHAR NOT NULL,
        sessions INTEGER NOT NULL,
        CONSTRAINT pk_teleconsultation_day
            PRIMARY KEY (site_id, day, departement, specialty_code, mode, assistance)
    )""",
    """CREATE INDEX ix_teleconsultation_day_day ON teleconsultation_day (day)
        INCLUDE (site_id, departement, specialty_code, mode, assistance, sessions)""",
    """CREATE TABLE specialty_day (
        day DATE NOT NULL,
        site_id VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        specialty_code VARCHAR NOT NULL,
        responder_id VARCHAR NOT NULL,
        acts INTEGER NOT NULL,
        CONSTRAINT pk_specialty_day
            PRIMARY KEY (site_id, day, source, specialty_code, responder_id)
    )""",
    """CREATE INDEX ix_specialty_day_day ON specialty_day (day, source)
        INCLUDE (site_id, specialty_code, responder_id, acts)""",
    # Tele-expertises by outcome (the `teleexpertises` indicator), per month and per day.
    *(
        f"""CREATE TABLE expertise_{grain} (
            {grain} DATE NOT NULL,
            site_id VARCHAR NOT NULL,
            departement VARCHAR NOT NULL,
            specialty_code VARCHAR NOT NULL,
            outcome VARCHAR NOT NULL,
            expertises INTEGER NOT NULL,
            CONSTRAINT pk_expertise_{grain}
                PRIMARY KEY (site_id, {grain}, departement, specialty_code, outcome)
        )"""
        for grain in ("month", "day")
    ),
    *(
        f"""CREATE INDEX ix_expertise_{grain}_{grain} ON expertise_{grain} ({grain})
            INCLUDE (site_id, departement, specialty_code, outcome, expertises)"""
        for grain in ("month", "day")
    ),
    # Specialties probe the rollups per (specialty, responder) and per (site, specialty)
    # instead of folding every cell of the period (see `db/indicators.py`).
    """CREATE INDEX ix_specialty_month_responder
        ON specialty_month (specialty_code, responder_id, month) INCLUDE (source, site_id)""",
    """CREATE INDEX ix_specialty_month_site_specialty
        ON specialty_month (site_id, specialty_code, month) INCLUDE (source)""",
    """CREATE INDEX ix_specialty_day_responder
        ON specialty_day (specialty_code, responder_id, day) INCLUDE (source, site_id)""",
    """CREATE INDEX ix_specialty_day_site_specialty
        ON specialty_day (site_id, specialty_code, day) INCLUDE (source)""",
    # `teleexpertises` and the partial days of a period read expertises by request instant,
    # whatever the site: index-only. Telemonitoring reads measurements by instant likewise.
    """CREATE INDEX ix_expertise_requested ON expertise (requested_at)
        INCLUDE (site_id, departement, specialty_code, responder_id, answered_at, outcome)""",
    """CREATE INDEX ix_measurement_measured ON measurement (measured_at)
        INCLUDE (site_id, departement, loinc_code, abnormal)""",
    f"""CREATE FUNCTION statistics_recompute_session_days(sites VARCHAR[], days DATE[])
        RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('statistics.session'), hashtext(site_id))
        FROM (SELECT DISTINCT site_id FROM unnest(sites) AS site_id ORDER BY 1) ordered;
        DELETE FROM teleconsultation_day t USING unnest(sites, days) AS c(site_id, day)
        WHERE t.site_id = c.site_id AND t.day = c.day;
        DELETE FROM specialty_day t USING unnest(sites, days) AS c(site_id, day)
        WHERE t.site_id = c.site_id AND t.day = c.day AND t.source = 'teleconsultation';
        INSERT INTO teleconsultation_day
        SELECT c.day, s.site_id, s.departement, s.specialty_code, s.mode, s.assistance, count(*)
        FROM {_DAYS} JOIN session s ON {_CELL.format(column="started_at")}
        WHERE s.act = 'teleconsultation' AND s.ended_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6;
        INSERT INTO specialty_day
        SELECT c.day, s.site_id, 'teleconsultation', s.specialty_code, s.responder_id, count(*)
        FROM {_DAYS} JOIN session s ON {_CELL.format(column="started_at")}
        WHERE s.act = 'teleconsultation' AND s.ended_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5;
    END $$""",
    f"""CREATE FUNCTION statistics_recompute_expertise_days(sites VARCHAR[], days DATE[])
        RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('statistics.expertise'), hashtext(site_id))
        FROM (SELECT DISTINCT site_id FROM unnest(sites) AS site_id ORDER BY 1) ordered;
        DELETE FROM specialty_day t USING unnest(sites, days) AS c(site_id, day)
        WHERE t.site_id = c.site_id AND t.day = c.day
              AND t.source IN ('expertise_requested', 'expertise_answered');
        INSERT INTO specialty_day
        SELECT c.day, s.site_id, f.source, s.specialty_code,
               CASE WHEN f.source = 'expertise_answered' THEN s.responder_id ELSE '' END,
               count(*)
        FROM {_DAYS} JOIN expertise s ON {_CELL.format(column="requested_at")}
        CROSS JOIN LATERAL (VALUES
            (CASE WHEN s.requested_at IS NOT NULL THEN 'expertise_requested' END),
            (CASE WHEN s.answered_at IS NOT NULL THEN 'expertise_answered' END)) AS f(source)
        WHERE f.source IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5;
        DELETE FROM expertise_day t USING unnest(sites, days) AS c(site_id, day)
        WHERE t.site_id = c.site_id AND t.day = c.day;
        INSERT INTO expertise_day
        SELECT c.day, s.site_id, s.departement, s.specialty_code, s.outcome, count(*)
        FROM {_DAYS} JOIN expertise s ON {_CELL.format(column="requested_at")}
        GROUP BY 1, 2, 3, 4, 5;
    END $$""",
    """CREATE FUNCTION statistics_recompute_expertise_months(sites VARCHAR[], months DATE[])
        RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('statistics.expertise'), hashtext(site_id))
        FROM (SELECT DISTINCT site_id FROM unnest(sites) AS site_id ORDER BY 1) ordered;
        DELETE FROM expertise_month t USING unnest(sites, months) AS c(site_id, month)
        WHERE t.site_id = c.site_id AND t.month = c.month;
        INSERT INTO expertise_month
        SELECT c.month, s.site_id, s.departement, s.specialty_code, s.outcome, count(*)
        FROM (SELECT DISTINCT * FROM unnest(sites, months) AS u(site_id, month)) c
        JOIN expertise s ON s.site_id = c.site_id
            AND s.requested_at >= (c.month::timestamp AT TIME ZONE 'Europe/Paris')
            AND s.requested_at
                < ((c.month + interval '1 month')::timestamp AT TIME ZONE 'Europe/Paris')
        GROUP BY 1, 2, 3, 4, 5;
    END $$""",
]

_CELLS = {
    "day": """SELECT DISTINCT site_id, ({column} AT TIME ZONE 'Europe/Paris')::date AS cell
        FROM {rows} WHERE {column} IS NOT NULL""",
    "month": """SELECT DISTINCT site_id,
            date_trunc('month', {column} AT TIME ZONE 'Europe/Paris')::date AS cell
        FROM {rows} WHERE {column} IS NOT NULL""",
}
# (table, instant, recomputing function, cell grain, trigger name part)
_TABLES = (
    ("session", "started_at", "statistics_recompute_session_days", "day", "day"),
    ("expertise", "requested_at", "statistics_recompute_expertise_days", "day", "day"),
    ("expertise", "requested_at", "statistics_recompute_expertise_months", "month", "outcome"),
)

for _table, _column, _function, _grain, _part in _TABLES:
    for _op, _rows in (
        ("INSERT", ("new_rows",)),
        ("UPDATE", ("new_rows", "old_rows")),
        ("DELETE", ("old_rows",)),
    ):
        _union = " UNION ".join(_CELLS[_grain].format(column=_column, rows=rows) for rows in _rows)
        _referencing = " ".join(
            f"{'NEW' if rows == 'new_rows' else 'OLD'} TABLE AS {rows}" for rows in _rows
        )
        _name = f"statistics_{_table}_{_op.lower()}_{_part}_rollup"
        STATEMENTS += [
            f"""CREATE FUNCTION {_name}() RETURNS trigger LANGUAGE plpgsql
                SET search_path FROM CURRENT AS $$
            BEGIN
                PERFORM {_function}(sites, cells) FROM (
                    SELECT array_agg(site_id) AS sites, array_agg(cell) AS cells
                    FROM ({_union}) cells) agg
                WHERE sites IS NOT NULL;
                RETURN NULL;
            END $$""",
            f"""CREATE TRIGGER {_name} AFTER {_op} ON {_table}
                REFERENCING {_referencing} FOR EACH STATEMENT EXECUTE FUNCTION {_name}()""",
        ]

# Existing rows (a schema migrated with data): fill every cell once.
STATEMENTS += [
    f"""SELECT {function}(array_agg(site_id), array_agg(cell))
        FROM ({_CELLS[grain].format(column=column, rows=table)}) cells
        HAVING count(*) > 0"""
    for table, column, function, grain, _ in _TABLES
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table, _, function, _, part in _TABLES:
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER statistics_{table}_{action}_{part}_rollup ON {table}")
            op.execute(f"DROP FUNCTION statistics_{table}_{action}_{part}_rollup()")
        op.execute(f"DROP FUNCTION {function}(VARCHAR[], DATE[])")
    op.drop_table("expertise_day")
    op.drop_table("expertise_month")
    op.drop_index("ix_measurement_measured", table_name="measurement")
    op.drop_index("ix_expertise_requested", table_name="expertise")
    op.drop_index("ix_specialty_month_responder", table_name="specialty_month")
    op.drop_index("ix_specialty_month_site_specialty", table_name="specialty_month")
    op.drop_table("specialty_day")
    op.drop_table("teleconsultation_day")
