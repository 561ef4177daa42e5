# ruff: noqa: S608 - DDL assembled from constants.
"""Appointments fulfilled by hand count as teleconsultations.

A nurse or responder may record an appointment fulfilled by hand (`AppointmentFulfilled` with
no `session_id`): the video failed and the call went on by phone, or the session ran outside
Maillage. Such an appointment of act teleconsultation is a teleconsultation, dated by its start,
unless an ended session names it (that session is the teleconsultation: counted once).

It is kept as a row of `session` (`session_id` 'appointment:<id>', no live duration, so the
session-duration histogram ignores it): every rollup, indicator and metric built on
sessions counts it with no change. Triggers on `appointment` and `session` recompute these rows
for the appointments a statement touched, under a lock per appointment, so the answer does
not depend on which of the two events arrives first. With `statistics.defer_rollups` on (the
rebuild) they do nothing: `statistics_refresh_rollups()` recomputes every such row first.

Revision ID: 0007
Revises: 0006
Created: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEFERRED = "coalesce(current_setting('statistics.defer_rollups', true), '') = 'on'"
_PREFIX = "appointment:"
_MANUAL = f"""SELECT '{_PREFIX}' || a.appointment_id, a.site_id, a.responder_id,
           a.specialty_code, a.act, a.departement, a.context_at, a.mode, a.assistance,
           a.appointment_id, a.start_at, a.start_at, coalesce(a.start_at, a.fulfilled_at)
    FROM appointment a
    WHERE a.fulfilled_at IS NOT NULL AND a.session_id = '' AND a.act = 'teleconsultation'
          AND NOT EXISTS (SELECT 1 FROM session s
                          WHERE s.appointment_id = a.appointment_id AND s.ended_at IS NOT NULL
                                AND s.session_id NOT LIKE '{_PREFIX}%')"""
_COLUMNS = """(session_id, site_id, responder_id, specialty_code, act, departement, context_at,
               mode, assistance, appointment_id, scheduled_start, started_at, ended_at)"""

# Appointments whose manual row may change, per trigger (the rows a statement touched).
_APPOINTMENT_IDS = {
    ("appointment", "INSERT"): "SELECT appointment_id FROM new_rows",
    ("appointment", "UPDATE"): """SELECT n.appointment_id FROM new_rows n
        JOIN old_rows o USING (appointment_id) WHERE n IS DISTINCT FROM o""",
    ("appointment", "DELETE"): "SELECT appointment_id FROM old_rows",
    ("session", "INSERT"): f"""SELECT appointment_id FROM new_rows
        WHERE appointment_id <> '' AND ended_at IS NOT NULL
              AND session_id NOT LIKE '{_PREFIX}%'""",
    ("session", "UPDATE"): f"""SELECT n.appointment_id FROM new_rows n
        JOIN old_rows o USING (session_id)
        WHERE n.session_id NOT LIKE '{_PREFIX}%' AND n.appointment_id <> ''
              AND (n.ended_at, n.appointment_id) IS DISTINCT FROM (o.ended_at, o.appointment_id)
        UNION SELECT o.appointment_id FROM old_rows o JOIN new_rows n USING (session_id)
        WHERE o.session_id NOT LIKE '{_PREFIX}%' AND o.appointment_id <> ''
              AND o.appointment_id <> n.appointment_id""",
    ("session", "DELETE"): f"""SELECT appointment_id FROM old_rows
        WHERE appointment_id <> '' AND ended_at IS NOT NULL
              AND session_id NOT LIKE '{_PREFIX}%'""",
}
_REFERENCING = {
    "INSERT": "NEW TABLE AS new_rows",
    "UPDATE": "NEW TABLE AS new_rows OLD TABLE AS old_rows",
    "DELETE": "OLD TABLE AS old_rows",
}


def _trigger_name(table: str, operation: str) -> str:
    return f"statistics_{table}_{operation.lower()}_manual"


def upgrade() -> None:
    # The triggers look sessions up by appointment.
    op.execute(
        """CREATE INDEX ix_session_appointment ON session (appointment_id)
           WHERE appointment_id <> ''"""
    )
    op.execute(
        f"""CREATE FUNCTION statistics_recompute_manual(ids VARCHAR[]) RETURNS void
            LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        BEGIN
            -- One appointment's events may be folded by two transactions at once (booking
            -- and session topics): serialise per appointment, in one order (no deadlock).
            PERFORM pg_advisory_xact_lock(hashtext('statistics.manual'), hashtext(id))
            FROM (SELECT DISTINCT id FROM unnest(ids) AS id ORDER BY 1) ordered;
            DELETE FROM session s USING (SELECT DISTINCT id FROM unnest(ids) AS id) u
            WHERE s.session_id = '{_PREFIX}' || u.id
                  AND NOT EXISTS ({_MANUAL} AND a.appointment_id = u.id);
            INSERT INTO session {_COLUMNS}
            {_MANUAL} AND a.appointment_id IN (SELECT DISTINCT id FROM unnest(ids) AS id)
            ON CONFLICT (session_id) DO UPDATE SET
                site_id = excluded.site_id, responder_id = excluded.responder_id,
                specialty_code = excluded.specialty_code, departement = excluded.departement,
                context_at = excluded.context_at, mode = excluded.mode,
                assistance = excluded.assistance, scheduled_start = excluded.scheduled_start,
                started_at = excluded.started_at, ended_at = excluded.ended_at
            WHERE (session.site_id, session.responder_id, session.specialty_code,
                   session.departement, session.mode, session.assistance,
                   session.started_at, session.ended_at)
                  IS DISTINCT FROM
                  (excluded.site_id, excluded.responder_id, excluded.specialty_code,
                   excluded.departement, excluded.mode, excluded.assistance,
                   excluded.started_at, excluded.ended_at);
        END $$"""
    )
    for (table, operation), ids in _APPOINTMENT_IDS.items():
        name = _trigger_name(table, operation)
        op.execute(
            f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql
                SET search_path FROM CURRENT AS $$
            DECLARE
                touched VARCHAR[];
            BEGIN
                IF {_DEFERRED} THEN RETURN NULL; END IF;
                SELECT array_agg(DISTINCT appointment_id) INTO touched FROM ({ids}) t;
                IF touched IS NOT NULL THEN
                    PERFORM statistics_recompute_manual(touched);
                END IF;
                RETURN NULL;
            END $$"""
        )
        op.execute(
            f"""CREATE TRIGGER {name} AFTER {operation} ON {table}
                REFERENCING {_REFERENCING[operation]}
                FOR EACH STATEMENT EXECUTE FUNCTION {name}()"""
        )
    # The rebuild's refresh: every manual row first, then every rollup from the sessions.
    op.execute(
        "ALTER FUNCTION statistics_refresh_rollups() RENAME TO statistics_refresh_session_rollups"
    )
    op.execute(
        f"""CREATE FUNCTION statistics_refresh_rollups() RETURNS void LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
        DECLARE
            deferred TEXT := coalesce(current_setting('statistics.defer_rollups', true), '');
        BEGIN
            PERFORM set_config('statistics.defer_rollups', 'on', true);
            DELETE FROM session WHERE session_id LIKE '{_PREFIX}%';
            INSERT INTO session {_COLUMNS} {_MANUAL};
            PERFORM set_config('statistics.defer_rollups', deferred, true);
            PERFORM statistics_refresh_session_rollups();
        END $$"""
    )
    # Existing rows (a schema migrated with data): the refresh adds their manual rows and
    # recomputes every rollup once (at 1,000,000 sessions: ~30 s, against minutes for the
    # rollup triggers recomputing the cells of 30,000 inserted rows).
    op.execute(f"SELECT statistics_refresh_rollups() WHERE EXISTS ({_MANUAL})")


def downgrade() -> None:
    op.execute("DROP FUNCTION statistics_refresh_rollups()")
    op.execute(
        "ALTER FUNCTION statistics_refresh_session_rollups() RENAME TO statistics_refresh_rollups"
    )
    for table, operation in _APPOINTMENT_IDS:
        name = _trigger_name(table, operation)
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(f"DROP FUNCTION {name}()")
    op.execute("DROP FUNCTION statistics_recompute_manual(VARCHAR[])")
    op.execute("SELECT set_config('statistics.defer_rollups', 'on', true)")
    op.execute(f"DELETE FROM session WHERE session_id LIKE '{_PREFIX}%'")
    op.execute("SELECT set_config('statistics.defer_rollups', '', true)")
    op.execute("SELECT statistics_refresh_rollups()")
    op.execute("DROP INDEX ix_session_appointment")
