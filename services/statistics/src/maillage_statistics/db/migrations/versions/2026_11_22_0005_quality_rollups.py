# ruff: noqa: S608 - DDL assembled from constants.
"""Service-quality rollups (counts and log-spaced histograms) per (site, Paris month / day),
kept by the same kind of recomputing triggers; a switch to defer every rollup trigger (the
rebuild) and one function that refreshes every rollup from the base rows.

`quality_month` / `quality_day` hold, per cell, site, département and specialty, one count per
`measure` and `bucket`. Counters (appointments booked, cancelled, fulfilled, no-shows, expired
on-demand requests, failed sessions, tele-expertises answered and answered in time) use bucket
0. Histograms (`time_to_accept`, `session_duration`, `expertise_response`) count values per
log-spaced bucket 5 % wide: bucket b holds [1.05^b, 1.05^(b+1)) seconds, values <= 0 go to
bucket -32768. Reading a percentile from the buckets (`domain.rules.histogram_percentile`)
gives it within ±2.5 % of the exact value, and the counts are additive across cells, so any
period is whole months + whole days + at most two partial days of base rows.

Each cell is recomputed from its base rows (never incremented): equal to a GROUP BY of the
base tables under duplicates, any order, moved and deleted rows. Rows without an instant go
to month '-infinity' (unbounded periods only), and have no day.

Deferral: with `SET LOCAL statistics.defer_rollups = 'on'` every rollup trigger (these and
those of migrations 0003/0004) does nothing; `statistics_refresh_rollups()` then recomputes
every rollup at once (the rebuild folds millions of events that way: one pass instead of one
recomputation of the touched cells per batch).

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

ZERO_BUCKET = -32768


def _bucket(value: str) -> str:
    return (
        f"CASE WHEN {value} <= 0 THEN {ZERO_BUCKET} "
        f"ELSE floor(ln({value}::float8) / ln(1.05::float8))::int END"
    )


# (table, instant, lock namespace, [(measure, condition, bucket)]): each measure of a row is
# dated by `instant`; a row adds one to (measure, bucket) when its condition holds.
SOURCES: list[tuple[str, str, str, list[tuple[str, str, str]]]] = [
    (
        "session",
        "started_at",
        "session",
        [
            (
                "session_duration",
                "s.ended_at IS NOT NULL AND s.live_seconds IS NOT NULL",
                _bucket("s.live_seconds"),
            )
        ],
    ),
    (
        "session",
        "failed_at",
        "session",
        [("failed_sessions", "s.failed_at IS NOT NULL AND s.ended_at IS NULL", "0")],
    ),
    (
        "appointment",
        "start_at",
        "appointment",
        [
            ("appointments_booked", "s.booked_at IS NOT NULL", "0"),
            (
                "appointments_cancelled",
                "s.booked_at IS NOT NULL AND s.cancelled_at IS NOT NULL",
                "0",
            ),
            ("appointments_fulfilled", "s.fulfilled_at IS NOT NULL", "0"),
            ("appointments_no_show", "s.no_show_at IS NOT NULL AND s.fulfilled_at IS NULL", "0"),
        ],
    ),
    (
        "consultation",
        "requested_at",
        "consultation",
        [
            (
                "time_to_accept",
                "s.accepted_at IS NOT NULL AND s.time_to_accept_seconds IS NOT NULL",
                _bucket("s.time_to_accept_seconds"),
            ),
            ("on_demand_expired", "s.expired_at IS NOT NULL AND s.accepted_at IS NULL", "0"),
        ],
    ),
    (
        "expertise",
        "requested_at",
        "expertise",
        [
            (
                "expertise_response",
                "s.answered_at IS NOT NULL AND s.response_seconds IS NOT NULL",
                _bucket("s.response_seconds"),
            ),
            ("expertises_answered", "s.answered_at IS NOT NULL", "0"),
            (
                "expertises_answered_in_time",
                "s.answered_at IS NOT NULL AND s.response_seconds <= s.requested_delay_seconds",
                "0",
            ),
        ],
    ),
]

_RANGE = {
    "month": (
        "(c.cell::timestamp AT TIME ZONE 'Europe/Paris')",
        "((c.cell + interval '1 month')::timestamp AT TIME ZONE 'Europe/Paris')",
    ),
    "day": (
        "(c.cell::timestamp AT TIME ZONE 'Europe/Paris')",
        "((c.cell + 1)::timestamp AT TIME ZONE 'Europe/Paris')",
    ),
}
_CELL_OF = {
    "month": "coalesce(date_trunc('month', {0} AT TIME ZONE 'Europe/Paris')::date, "
    "'-infinity'::date)",
    "day": "({0} AT TIME ZONE 'Europe/Paris')::date",
}


def _undated(grain: str, instant: str) -> bool:
    """Whether rows without this instant have a cell (month '-infinity'): not for days, not
    for failures (a failed session always has its instant)."""
    return grain == "month" and instant != "failed_at"


def _changed_cells(grain: str, instant: str, rows: str) -> str:
    where = "TRUE" if _undated(grain, instant) else f"{instant} IS NOT NULL"
    cell = _CELL_OF[grain].format(instant)
    return f"SELECT DISTINCT site_id, {cell} AS cell FROM {rows} WHERE {where}"


_DEFERRED = "coalesce(current_setting('statistics.defer_rollups', true), '') = 'on'"


def _function(table: str, instant: str, grain: str) -> str:
    return f"statistics_recompute_quality_{table}_{instant}_{grain}"


def _recompute(
    table: str, instant: str, namespace: str, measures: list[tuple[str, str, str]], grain: str
) -> str:
    names = ", ".join(f"'{measure}'" for measure, _, _ in measures)
    values = ", ".join(
        f"(CASE WHEN {condition} THEN '{measure}' END, {bucket})"
        for measure, condition, bucket in measures
    )
    low, high = _RANGE[grain]
    insert = f"""INSERT INTO quality_{grain}
        SELECT c.cell, s.site_id, s.departement, s.specialty_code, m.measure, m.bucket, count(*)
        FROM (SELECT DISTINCT * FROM unnest(sites, cells) AS u(site_id, cell)) c
        JOIN {table} s ON s.site_id = c.site_id AND {{match}}
        CROSS JOIN LATERAL (VALUES {values}) AS m(measure, bucket)
        WHERE m.measure IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6"""
    inserts = [
        insert.format(
            match=f"c.cell > '-infinity' AND s.{instant} >= {low} AND s.{instant} < {high}"
        )
    ]
    if _undated(grain, instant):
        inserts.append(insert.format(match=f"c.cell = '-infinity' AND s.{instant} IS NULL"))
    return f"""CREATE FUNCTION {_function(table, instant, grain)}(sites VARCHAR[], cells DATE[])
        RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('statistics.{namespace}'), hashtext(site_id))
        FROM (SELECT DISTINCT site_id FROM unnest(sites) AS site_id ORDER BY 1) ordered;
        DELETE FROM quality_{grain} t USING unnest(sites, cells) AS c(site_id, cell)
        WHERE t.site_id = c.site_id AND t.{grain} = c.cell AND t.measure IN ({names});
        {"; ".join(inserts)};
    END $$"""


STATEMENTS: list[str] = [
    *(
        f"""CREATE TABLE quality_{grain} (
            {grain} DATE NOT NULL,
            site_id VARCHAR NOT NULL,
            departement VARCHAR NOT NULL,
            specialty_code VARCHAR NOT NULL,
            measure VARCHAR NOT NULL,
            bucket INTEGER NOT NULL,
            n INTEGER NOT NULL,
            CONSTRAINT pk_quality_{grain}
                PRIMARY KEY (site_id, {grain}, measure, departement, specialty_code, bucket)
        )"""
        for grain in ("month", "day")
    ),
    *(
        f"""CREATE INDEX ix_quality_{grain}_{grain} ON quality_{grain} ({grain})
            INCLUDE (site_id, departement, specialty_code, measure, bucket, n)"""
        for grain in ("month", "day")
    ),
    # Recomputation by (site, instant) and partial days by instant, for the new sources.
    "CREATE INDEX ix_appointment_site_start ON appointment (site_id, start_at)",
    """CREATE INDEX ix_appointment_start ON appointment (start_at)
        INCLUDE (site_id, departement, specialty_code, booked_at, cancelled_at, fulfilled_at,
                 no_show_at)""",
    "CREATE INDEX ix_consultation_site_requested ON consultation (site_id, requested_at)",
    """CREATE INDEX ix_consultation_requested ON consultation (requested_at)
        INCLUDE (site_id, departement, specialty_code, accepted_at, time_to_accept_seconds,
                 expired_at)""",
    """CREATE INDEX ix_session_site_failed ON session (site_id, failed_at)
        WHERE failed_at IS NOT NULL""",
    """CREATE INDEX ix_session_failed ON session (failed_at)
        INCLUDE (site_id, departement, specialty_code, ended_at) WHERE failed_at IS NOT NULL""",
]

for _table, _instant, _namespace, _measures in SOURCES:
    for _grain in ("month", "day"):
        STATEMENTS.append(_recompute(_table, _instant, _namespace, _measures, _grain))
        for _op, _rows in (
            ("INSERT", ("new_rows",)),
            ("UPDATE", ("new_rows", "old_rows")),
            ("DELETE", ("old_rows",)),
        ):
            _union = " UNION ".join(_changed_cells(_grain, _instant, rows) for rows in _rows)
            _referencing = " ".join(
                f"{'NEW' if rows == 'new_rows' else 'OLD'} TABLE AS {rows}" for rows in _rows
            )
            _name = f"statistics_{_table}_{_op.lower()}_quality_{_instant}_{_grain}"
            STATEMENTS += [
                f"""CREATE FUNCTION {_name}() RETURNS trigger LANGUAGE plpgsql
                    SET search_path FROM CURRENT AS $$
                BEGIN
                    IF {_DEFERRED} THEN RETURN NULL; END IF;
                    PERFORM {_function(_table, _instant, _grain)}(sites, cells) FROM (
                        SELECT array_agg(site_id) AS sites, array_agg(cell) AS cells
                        FROM ({_union}) cells) agg
                    WHERE sites IS NOT NULL;
                    RETURN NULL;
                END $$""",
                f"""CREATE TRIGGER {_name} AFTER {_op} ON {_table}
                    REFERENCING {_referencing} FOR EACH STATEMENT EXECUTE FUNCTION {_name}()""",
            ]

# The triggers of migrations 0003 / 0004, redefined with the deferral switch.
_CELLS_0003 = """SELECT DISTINCT site_id, coalesce(
    date_trunc('month', {column} AT TIME ZONE 'Europe/Paris')::date, '-infinity'::date) AS cell
    FROM {rows}"""
_CELLS_0004 = {
    "day": """SELECT DISTINCT site_id, ({column} AT TIME ZONE 'Europe/Paris')::date AS cell
        FROM {rows} WHERE {column} IS NOT NULL""",
    "month": """SELECT DISTINCT site_id,
            date_trunc('month', {column} AT TIME ZONE 'Europe/Paris')::date AS cell
        FROM {rows} WHERE {column} IS NOT NULL""",
}
# (table, instant, recomputing function, cells of the changed rows, trigger name part)
EARLIER = (
    ("session", "started_at", "statistics_recompute_sessions", _CELLS_0003, ""),
    ("expertise", "requested_at", "statistics_recompute_expertises", _CELLS_0003, ""),
    ("session", "started_at", "statistics_recompute_session_days", _CELLS_0004["day"], "_day"),
    (
        "expertise",
        "requested_at",
        "statistics_recompute_expertise_days",
        _CELLS_0004["day"],
        "_day",
    ),
    (
        "expertise",
        "requested_at",
        "statistics_recompute_expertise_months",
        _CELLS_0004["month"],
        "_outcome",
    ),
)


def _earlier_triggers(*, deferrable: bool) -> list[str]:
    statements = []
    for table, column, function, cells, part in EARLIER:
        for action, rows in (
            ("insert", ("new_rows",)),
            ("update", ("new_rows", "old_rows")),
            ("delete", ("old_rows",)),
        ):
            union = " UNION ".join(cells.format(column=column, rows=r) for r in rows)
            guard = f"IF {_DEFERRED} THEN RETURN NULL; END IF;" if deferrable else ""
            statements.append(
                f"""CREATE OR REPLACE FUNCTION statistics_{table}_{action}{part}_rollup()
                    RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
                BEGIN
                    {guard}
                    PERFORM {function}(sites, cells) FROM (
                        SELECT array_agg(site_id) AS sites, array_agg(cell) AS cells
                        FROM ({union}) cells) agg
                    WHERE sites IS NOT NULL;
                    RETURN NULL;
                END $$"""
            )
    return statements


def _base_aggregates() -> list[str]:
    """Every per-site rollup as one GROUP BY of its base table (what the recomputing functions
    give cell by cell: a month cell also holds rows without an instant, as '-infinity'; a day
    cell never does): one pass over each base table instead of one index range per cell."""
    statements = []
    for grain in ("month", "day"):
        cell = _CELL_OF[grain]
        dated = "TRUE" if grain == "month" else "{0} IS NOT NULL"
        teleconsultations = (
            "s.act = 'teleconsultation' AND s.ended_at IS NOT NULL AND "
            + dated.format("s.started_at")
        )
        statements += [
            f"""INSERT INTO teleconsultation_{grain}
                SELECT {cell.format("s.started_at")}, s.site_id, s.departement,
                       s.specialty_code, s.mode, s.assistance, count(*)
                FROM session s WHERE {teleconsultations} GROUP BY 1, 2, 3, 4, 5, 6""",
            f"""INSERT INTO specialty_{grain}
                SELECT {cell.format("s.started_at")}, s.site_id, 'teleconsultation',
                       s.specialty_code, s.responder_id, count(*)
                FROM session s WHERE {teleconsultations} GROUP BY 1, 2, 3, 4, 5""",
            f"""INSERT INTO specialty_{grain}
                SELECT {cell.format("s.requested_at")}, s.site_id, f.source, s.specialty_code,
                       CASE WHEN f.source = 'expertise_answered' THEN s.responder_id ELSE ''
                       END, count(*)
                FROM expertise s CROSS JOIN LATERAL (VALUES
                    (CASE WHEN s.requested_at IS NOT NULL THEN 'expertise_requested' END),
                    (CASE WHEN s.answered_at IS NOT NULL THEN 'expertise_answered' END))
                    AS f(source)
                WHERE f.source IS NOT NULL AND {dated.format("s.requested_at")}
                GROUP BY 1, 2, 3, 4, 5""",
            # By outcome: only requests with their instant (both grains).
            f"""INSERT INTO expertise_{grain}
                SELECT {cell.format("s.requested_at")}, s.site_id, s.departement,
                       s.specialty_code, s.outcome, count(*)
                FROM expertise s WHERE s.requested_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5""",
        ]
        for table, instant, _, measures in SOURCES:
            values = ", ".join(
                f"(CASE WHEN {condition} THEN '{measure}' END, {bucket})"
                for measure, condition, bucket in measures
            )
            undated = "TRUE" if _undated(grain, instant) else f"s.{instant} IS NOT NULL"
            statements.append(
                f"""INSERT INTO quality_{grain}
                    SELECT {cell.format(f"s.{instant}")}, s.site_id, s.departement,
                           s.specialty_code, m.measure, m.bucket, count(*)
                    FROM {table} s CROSS JOIN LATERAL (VALUES {values}) AS m(measure, bucket)
                    WHERE m.measure IS NOT NULL AND {undated}
                    GROUP BY 1, 2, 3, 4, 5, 6"""
            )
    return statements


def _refresh_body() -> str:
    """Every rollup emptied, then computed from the base rows once."""
    calls = [f"{statement};" for statement in _base_aggregates()]
    rollups = (
        "teleconsultation_month, teleconsultation_day, specialty_month, specialty_day, "
        "expertise_month, expertise_day, quality_month, quality_day"
    )
    calls += [
        _departement_fill(rollup, grain, "PERFORM") + ";"
        for rollup, _, _ in DEPARTEMENT_ROLLUPS
        for grain in ("month", "day")
    ]
    calls += [
        f"""PERFORM statistics_recompute_site_activity_{grain}(array_agg(site_id),
                                                               array_agg(cell))
            FROM (SELECT site_id, {grain} AS cell FROM teleconsultation_{grain}
                  UNION SELECT site_id, {grain} FROM specialty_{grain}
                  WHERE source = 'expertise_requested') c HAVING count(*) > 0;"""
        for grain in ("month", "day")
    ]
    calls.append(
        f"""PERFORM statistics_recompute_presence(array_agg(kind), array_agg(specialty_code),
                                                  array_agg(who))
            FROM ({_PRESENCE_KEYS.format(rows="specialty_day", sources=_PRESENCE_SOURCES)}) k
            HAVING count(*) > 0;"""
    )
    # The triggers on the rollups themselves stay quiet: presence is recomputed once, last.
    return (
        "PERFORM set_config('statistics.defer_rollups', 'on', true);\n"
        f"TRUNCATE {rollups}, specialty_presence, site_activity_month, site_activity_day, "
        + ", ".join(
            f"{r}_departement_{g}" for r, _, _ in DEPARTEMENT_ROLLUPS for g in ("month", "day")
        )
        + ";\n"
        + "\n".join(calls)
    )


# Presence (the region-wide `specialties`): per (specialty, site) and (specialty, responder),
# the Paris days with a teleconsultation or an answered tele-expertise (a responder's: for
# operational sites only), as one multirange recomputed from `specialty_day` whenever its cells
# of that key change, or a site's operational status changes. A period's distinct
# sites / responders are then one overlap test per key instead of one probe per key.
_PRESENCE_SOURCES = "('teleconsultation', 'expertise_answered')"
_PRESENCE_KEYS = """SELECT DISTINCT 'site' AS kind, specialty_code, site_id AS who FROM {rows}
        WHERE source IN {sources}
        UNION SELECT DISTINCT 'responder', specialty_code, responder_id FROM {rows}
        WHERE source IN {sources} AND responder_id <> ''"""
STATEMENTS += [
    """CREATE TABLE specialty_presence (
        kind VARCHAR NOT NULL,
        specialty_code VARCHAR NOT NULL,
        who VARCHAR NOT NULL,
        days DATEMULTIRANGE NOT NULL,
        CONSTRAINT pk_specialty_presence PRIMARY KEY (kind, specialty_code, who)
    )""",
    f"""CREATE FUNCTION statistics_recompute_presence(keys_kind VARCHAR[],
            keys_specialty VARCHAR[], keys_who VARCHAR[])
        RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        -- A responder's key spans sites: serialise per key (in one order: no deadlock).
        PERFORM pg_advisory_xact_lock(hashtext('statistics.presence'), hashtext(k))
        FROM (SELECT DISTINCT concat_ws('/', u.kind, u.specialty_code, u.who) AS k
              FROM unnest(keys_kind, keys_specialty, keys_who) AS u(kind, specialty_code, who)
              ORDER BY 1) ordered;
        DELETE FROM specialty_presence p
        USING unnest(keys_kind, keys_specialty, keys_who) AS u(kind, specialty_code, who)
        WHERE p.kind = u.kind AND p.specialty_code = u.specialty_code AND p.who = u.who;
        INSERT INTO specialty_presence
        SELECT 'site', d.specialty_code, d.site_id, range_agg(daterange(d.day, d.day + 1))
        FROM (SELECT DISTINCT * FROM unnest(keys_kind, keys_specialty, keys_who)
              AS u(kind, specialty_code, who)) u
        JOIN specialty_day d ON d.site_id = u.who AND d.specialty_code = u.specialty_code
        WHERE u.kind = 'site' AND d.source IN {_PRESENCE_SOURCES}
        GROUP BY 2, 3;
        INSERT INTO specialty_presence
        SELECT 'responder', d.specialty_code, d.responder_id,
               range_agg(daterange(d.day, d.day + 1))
        FROM (SELECT DISTINCT * FROM unnest(keys_kind, keys_specialty, keys_who)
              AS u(kind, specialty_code, who)) u
        JOIN specialty_day d ON d.specialty_code = u.specialty_code AND d.responder_id = u.who
        -- A responder is mobilised by operational sites only (the indicator's rule).
        JOIN site st ON st.site_id = d.site_id AND st.active
        WHERE u.kind = 'responder' AND d.source IN {_PRESENCE_SOURCES}
        GROUP BY 2, 3;
    END $$""",
]
# A site that becomes (or stops being) operational, appears or goes: the presence of the
# responders who acted for it changes.
_SITE_KEYS = """SELECT DISTINCT 'responder' AS kind, d.specialty_code, d.responder_id AS who
    FROM specialty_day d
    WHERE d.site_id IN (SELECT site_id FROM ({changed}) c) AND d.responder_id <> ''
          AND d.source IN {sources}"""
for _op, _changed in (
    ("INSERT", "SELECT site_id FROM new_rows WHERE active"),
    (
        "UPDATE",
        """SELECT site_id FROM new_rows n FULL JOIN old_rows o USING (site_id)
           WHERE n.active IS DISTINCT FROM o.active""",
    ),
    ("DELETE", "SELECT site_id FROM old_rows WHERE active"),
):
    _name = f"statistics_site_{_op.lower()}_presence"
    _referencing = {
        "INSERT": "NEW TABLE AS new_rows",
        "UPDATE": "NEW TABLE AS new_rows OLD TABLE AS old_rows",
        "DELETE": "OLD TABLE AS old_rows",
    }[_op]
    _keys = _SITE_KEYS.format(changed=_changed, sources=_PRESENCE_SOURCES)
    STATEMENTS += [
        f"""CREATE FUNCTION {_name}() RETURNS trigger LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
        BEGIN
            IF {_DEFERRED} THEN RETURN NULL; END IF;
            PERFORM statistics_recompute_presence(kinds, specialties, whos) FROM (
                SELECT array_agg(kind) AS kinds, array_agg(specialty_code) AS specialties,
                       array_agg(who) AS whos
                FROM ({_keys}) k) agg
            WHERE kinds IS NOT NULL;
            RETURN NULL;
        END $$""",
        f"""CREATE TRIGGER {_name} AFTER {_op} ON site
            REFERENCING {_referencing} FOR EACH STATEMENT EXECUTE FUNCTION {_name}()""",
    ]
for _op, _rows in (
    ("INSERT", ("new_rows",)),
    ("UPDATE", ("new_rows", "old_rows")),
    ("DELETE", ("old_rows",)),
):
    _union = " UNION ".join(
        _PRESENCE_KEYS.format(rows=rows, sources=_PRESENCE_SOURCES) for rows in _rows
    )
    _referencing = " ".join(
        f"{'NEW' if rows == 'new_rows' else 'OLD'} TABLE AS {rows}" for rows in _rows
    )
    _name = f"statistics_specialty_day_{_op.lower()}_presence"
    STATEMENTS += [
        f"""CREATE FUNCTION {_name}() RETURNS trigger LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
        BEGIN
            IF {_DEFERRED} THEN RETURN NULL; END IF;
            PERFORM statistics_recompute_presence(kinds, specialties, whos) FROM (
                SELECT array_agg(kind) AS kinds, array_agg(specialty_code) AS specialties,
                       array_agg(who) AS whos
                FROM ({_union}) k) agg
            WHERE kinds IS NOT NULL;
            RETURN NULL;
        END $$""",
        f"""CREATE TRIGGER {_name} AFTER {_op} ON specialty_day
            REFERENCING {_referencing} FOR EACH STATEMENT EXECUTE FUNCTION {_name}()""",
    ]

# Site activity (the `site-act-types` and `usage-status` sections without a specialty filter):
# per (site, Paris month / day), teleconsultations assisted / simple and tele-expertises
# requested, recomputed from the fine rollups whenever their cells of that site change. One row
# per site and cell instead of one per site, specialty, mode, assistance (and responder).
_ACTIVITY = {
    grain: f"""INSERT INTO site_activity_{grain}
        SELECT c.cell, c.site_id,
               coalesce(sum(a.assisted), 0)::int, coalesce(sum(a.simple), 0)::int,
               coalesce(sum(a.expertises), 0)::int
        FROM (SELECT DISTINCT * FROM unnest(sites, cells) AS u(site_id, cell)) c
        JOIN (SELECT t.site_id, t.{grain} AS cell,
                     CASE WHEN t.assistance = 'assisted' THEN t.sessions ELSE 0 END AS assisted,
                     CASE WHEN t.assistance <> 'assisted' THEN t.sessions ELSE 0 END AS simple,
                     0 AS expertises
              FROM teleconsultation_{grain} t
              UNION ALL
              SELECT r.site_id, r.{grain}, 0, 0, r.acts FROM specialty_{grain} r
              WHERE r.source = 'expertise_requested') a
          ON a.site_id = c.site_id AND a.cell = c.cell
        GROUP BY 1, 2"""
    for grain in ("month", "day")
}
for _grain in ("month", "day"):
    STATEMENTS += [
        f"""CREATE TABLE site_activity_{_grain} (
            {_grain} DATE NOT NULL,
            site_id VARCHAR NOT NULL,
            assisted INTEGER NOT NULL,
            simple INTEGER NOT NULL,
            expertises INTEGER NOT NULL,
            CONSTRAINT pk_site_activity_{_grain} PRIMARY KEY (site_id, {_grain})
        )""",
        f"""CREATE INDEX ix_site_activity_{_grain}_{_grain} ON site_activity_{_grain} ({_grain})
            INCLUDE (site_id, assisted, simple, expertises)""",
        f"""CREATE FUNCTION statistics_recompute_site_activity_{_grain}(sites VARCHAR[],
                cells DATE[]) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        BEGIN
            -- Sessions and expertises of one site (two other locks) meet here: serialise.
            PERFORM pg_advisory_xact_lock(hashtext('statistics.site_activity'), hashtext(site_id))
            FROM (SELECT DISTINCT site_id FROM unnest(sites) AS site_id ORDER BY 1) ordered;
            DELETE FROM site_activity_{_grain} t USING unnest(sites, cells) AS c(site_id, cell)
            WHERE t.site_id = c.site_id AND t.{_grain} = c.cell;
            {_ACTIVITY[_grain]};
        END $$""",
    ]
    for _table in ("teleconsultation", "specialty"):
        for _op, _rows in (
            ("INSERT", ("new_rows",)),
            ("UPDATE", ("new_rows", "old_rows")),
            ("DELETE", ("old_rows",)),
        ):
            _union = " UNION ".join(
                f"SELECT DISTINCT site_id, {_grain} AS cell FROM {rows}" for rows in _rows
            )
            _referencing = " ".join(
                f"{'NEW' if rows == 'new_rows' else 'OLD'} TABLE AS {rows}" for rows in _rows
            )
            _name = f"statistics_{_table}_{_grain}_{_op.lower()}_activity"
            STATEMENTS += [
                f"""CREATE FUNCTION {_name}() RETURNS trigger LANGUAGE plpgsql
                    SET search_path FROM CURRENT AS $$
                BEGIN
                    IF {_DEFERRED} THEN RETURN NULL; END IF;
                    PERFORM statistics_recompute_site_activity_{_grain}(sites, cells) FROM (
                        SELECT array_agg(site_id) AS sites, array_agg(cell) AS cells
                        FROM ({_union}) cells) agg
                    WHERE sites IS NOT NULL;
                    RETURN NULL;
                END $$""",
                f"""CREATE TRIGGER {_name} AFTER {_op} ON {_table}_{_grain}
                    REFERENCING {_referencing} FOR EACH STATEMENT EXECUTE FUNCTION {_name}()""",
            ]

# Per département (`<rollup>_departement_*`): the same cells without the site, recomputed from
# the per-site rollup for the touched (département, cell). Read unless a site attribute filters:
# a region's histograms per site and cell have few values in each of their many buckets, its
# teleconsultation and tele-expertise cells one row per site and specialty (and outcome).
# (rollup, key columns after the cell, value column)
DEPARTEMENT_ROLLUPS = (
    ("quality", ("departement", "specialty_code", "measure", "bucket"), "n"),
    ("teleconsultation", ("departement", "specialty_code", "mode", "assistance"), "sessions"),
    ("expertise", ("departement", "specialty_code", "outcome"), "expertises"),
)


def _departement_rollup(rollup: str, keys: tuple[str, ...], value: str, grain: str) -> list[str]:
    table, function = f"{rollup}_departement_{grain}", f"statistics_recompute_{rollup}_dpt_{grain}"
    types = {"bucket": "INTEGER"}
    columns = ",\n".join(f"{key} {types.get(key, 'VARCHAR')} NOT NULL" for key in keys)
    listed = ", ".join(keys)
    statements = [
        f"""CREATE TABLE {table} (
            {grain} DATE NOT NULL,
            {columns},
            {value} INTEGER NOT NULL,
            CONSTRAINT pk_{table} PRIMARY KEY ({grain}, {listed})
        )""",
        f"""CREATE INDEX ix_{rollup}_{grain}_departement ON {rollup}_{grain}
            (departement, {grain}) INCLUDE ({", ".join(k for k in keys if k != "departement")},
                                           {value})""",
        f"""CREATE FUNCTION {function}(departements VARCHAR[], cells DATE[])
            RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('statistics.{table}'), hashtext(departement))
            FROM (SELECT DISTINCT departement FROM unnest(departements) AS departement
                  ORDER BY 1) ordered;
            DELETE FROM {table} t USING unnest(departements, cells) AS c(departement, cell)
            WHERE t.departement = c.departement AND t.{grain} = c.cell;
            INSERT INTO {table}
            SELECT c.cell, {", ".join(f"q.{key}" for key in keys)}, sum(q.{value})
            FROM (SELECT DISTINCT * FROM unnest(departements, cells) AS u(departement, cell)) c
            JOIN {rollup}_{grain} q ON q.departement = c.departement AND q.{grain} = c.cell
            GROUP BY {", ".join(str(n) for n in range(1, len(keys) + 2))};
        END $$""",
    ]
    for op_, rows_ in (
        ("INSERT", ("new_rows",)),
        ("UPDATE", ("new_rows", "old_rows")),
        ("DELETE", ("old_rows",)),
    ):
        union = " UNION ".join(
            f"SELECT DISTINCT departement, {grain} AS cell FROM {rows}" for rows in rows_
        )
        referencing = " ".join(
            f"{'NEW' if rows == 'new_rows' else 'OLD'} TABLE AS {rows}" for rows in rows_
        )
        name = f"statistics_{rollup}_{grain}_{op_.lower()}_departement"
        statements += [
            f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql
                SET search_path FROM CURRENT AS $$
            BEGIN
                IF {_DEFERRED} THEN RETURN NULL; END IF;
                PERFORM {function}(departements, cells)
                FROM (SELECT array_agg(departement) AS departements, array_agg(cell) AS cells
                      FROM ({union}) cells) agg
                WHERE departements IS NOT NULL;
                RETURN NULL;
            END $$""",
            f"""CREATE TRIGGER {name} AFTER {op_} ON {rollup}_{grain}
                REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}()""",
        ]
    return statements


def _departement_fill(rollup: str, grain: str, prefix: str) -> str:
    return f"""{prefix} statistics_recompute_{rollup}_dpt_{grain}(array_agg(departement),
                                                            array_agg(cell))
        FROM (SELECT DISTINCT departement, {grain} AS cell FROM {rollup}_{grain}) c
        HAVING count(*) > 0"""


for _rollup, _keys, _value in DEPARTEMENT_ROLLUPS:
    for _grain in ("month", "day"):
        STATEMENTS += _departement_rollup(_rollup, _keys, _value, _grain)

STATEMENTS += _earlier_triggers(deferrable=True)
STATEMENTS.append(
    f"""CREATE FUNCTION statistics_refresh_rollups() RETURNS void LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
    DECLARE
        deferred TEXT := coalesce(current_setting('statistics.defer_rollups', true), '');
    BEGIN
        {_refresh_body()}
        PERFORM set_config('statistics.defer_rollups', deferred, true);
    END $$"""
)
# Existing rows (a schema migrated with data): fill the new rollups once.
STATEMENTS += [
    f"""SELECT {_function(table, instant, grain)}(array_agg(site_id), array_agg(cell))
        FROM ({_changed_cells(grain, instant, table)}) c HAVING count(*) > 0"""
    for table, instant, _, _ in SOURCES
    for grain in ("month", "day")
]
STATEMENTS += [
    _departement_fill(rollup, grain, "SELECT")
    for rollup, _, _ in DEPARTEMENT_ROLLUPS
    for grain in ("month", "day")
]
STATEMENTS += [
    f"""SELECT statistics_recompute_site_activity_{grain}(array_agg(site_id), array_agg(cell))
        FROM (SELECT site_id, {grain} AS cell FROM teleconsultation_{grain}
              UNION SELECT site_id, {grain} FROM specialty_{grain}
              WHERE source = 'expertise_requested') c HAVING count(*) > 0"""
    for grain in ("month", "day")
]
STATEMENTS.append(
    f"""SELECT statistics_recompute_presence(array_agg(kind), array_agg(specialty_code),
                                             array_agg(who))
        FROM ({_PRESENCE_KEYS.format(rows="specialty_day", sources=_PRESENCE_SOURCES)}) k
        HAVING count(*) > 0"""
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION statistics_refresh_rollups()")
    for action in ("insert", "update", "delete"):
        for table in ("specialty_day", "site"):
            name = f"statistics_{table}_{action}_presence"
            op.execute(f"DROP TRIGGER {name} ON {table}")
            op.execute(f"DROP FUNCTION {name}()")
    op.execute("DROP FUNCTION statistics_recompute_presence(VARCHAR[], VARCHAR[], VARCHAR[])")
    for grain in ("month", "day"):
        for rollup, _, _ in DEPARTEMENT_ROLLUPS:
            for action in ("insert", "update", "delete"):
                name = f"statistics_{rollup}_{grain}_{action}_departement"
                op.execute(f"DROP TRIGGER {name} ON {rollup}_{grain}")
                op.execute(f"DROP FUNCTION {name}()")
            op.execute(
                f"DROP FUNCTION statistics_recompute_{rollup}_dpt_{grain}(VARCHAR[], DATE[])"
            )
            op.execute(f"DROP INDEX ix_{rollup}_{grain}_departement")
            op.drop_table(f"{rollup}_departement_{grain}")
        for table in ("teleconsultation", "specialty"):
            for action in ("insert", "update", "delete"):
                name = f"statistics_{table}_{grain}_{action}_activity"
                op.execute(f"DROP TRIGGER {name} ON {table}_{grain}")
                op.execute(f"DROP FUNCTION {name}()")
        op.execute(f"DROP FUNCTION statistics_recompute_site_activity_{grain}(VARCHAR[], DATE[])")
        op.drop_table(f"site_activity_{grain}")
    op.drop_table("specialty_presence")
    for statement in _earlier_triggers(deferrable=False):
        op.execute(statement)
    for table, instant, _, _ in SOURCES:
        for grain in ("month", "day"):
            for action in ("insert", "update", "delete"):
                name = f"statistics_{table}_{action}_quality_{instant}_{grain}"
                op.execute(f"DROP TRIGGER {name} ON {table}")
                op.execute(f"DROP FUNCTION {name}()")
            op.execute(f"DROP FUNCTION {_function(table, instant, grain)}(VARCHAR[], DATE[])")
    for index in (
        "ix_appointment_site_start",
        "ix_appointment_start",
        "ix_consultation_site_requested",
        "ix_consultation_requested",
        "ix_session_site_failed",
        "ix_session_failed",
    ):
        op.execute(f"DROP INDEX {index}")
    op.drop_table("quality_day")
    op.drop_table("quality_month")
