"""Session outcomes reported by session-signalling: fulfilled or no-show (by the system)."""

from __future__ import annotations

import structlog

from maillage.booking.v1 import events_pb2 as ev
from maillage.common.v1 import types_pb2 as types
from maillage.session_signalling.v1 import events_pb2 as sessions
from maillage_booking.db import repositories as repo
from maillage_booking.use_cases.appointments import record_outcome
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.events.envelope import Event

_log = structlog.get_logger(__name__)


async def _apply(
    uow: UnitOfWork,
    message: sessions.SessionEnded | sessions.SessionNoShow,
    *,
    fulfilled: bool,
    missing_side: types.NoShowSide.ValueType = types.NO_SHOW_SIDE_UNSPECIFIED,
) -> None:
    origin = message.WhichOneof("origin")
    row = await repo.appointment_from_session(
        uow.session,
        message.appointment_id if origin == "appointment_id" else "",
        message.consultation_id if origin == "consultation_id" else "",
    )
    if row is None or row.status != "booked":
        # Not ours, or already recorded by a person: the first outcome stands.
        _log.info("session_outcome_ignored", session_id=message.session_id)
        return
    await record_outcome(
        uow,
        row,
        fulfilled=fulfilled,
        actor=ev.ACTOR_SYSTEM,
        who="system:sessions",
        session_id=message.session_id,
        missing_side=missing_side,
    )


async def on_session_ended(event: Event[sessions.SessionEnded], uow: UnitOfWork) -> None:
    await _apply(uow, event.message, fulfilled=True)


async def on_session_no_show(event: Event[sessions.SessionNoShow], uow: UnitOfWork) -> None:
    await _apply(uow, event.message, fulfilled=False, missing_side=event.message.missing_side)
