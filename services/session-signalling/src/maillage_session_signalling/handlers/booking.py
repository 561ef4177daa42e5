"""Booking events open and revoke sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from maillage.booking.v1 import events_pb2 as booking
from maillage.common.v1 import types_pb2
from maillage_common.bus import EventConsumer, InvalidEventError
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.events.envelope import Event
from maillage_session_signalling.domain.session import SessionContext
from maillage_session_signalling.use_cases.sessions import revoke_in, schedule_in

# An accepted on-demand request starts now; its slot length is not on the event.
ON_DEMAND_LENGTH = timedelta(minutes=30)


async def on_appointment_booked(event: Event[booking.AppointmentBooked], uow: UnitOfWork) -> None:
    message = event.message
    context = SessionContext(
        site_id=message.site_id,
        responder_id=message.responder_id,
        specialty_code=message.specialty_code,
        act=message.act,
        departement=message.departement,
        mode=message.mode,
        assistance=message.assistance,
        resource_id=message.resource_id,
        appointment_id=message.appointment_id,
        consultation_id=message.consultation_id or None,
    )
    if not (message.HasField("start") and message.HasField("end")):
        raise InvalidEventError("AppointmentBooked without a start and an end")
    start, end = message.start.ToDatetime(tzinfo=UTC), message.end.ToDatetime(tzinfo=UTC)
    if end <= start:
        raise InvalidEventError("AppointmentBooked ends before it starts")
    await schedule_in(uow, context, start, end)


async def on_appointment_cancelled(
    event: Event[booking.AppointmentCancelled], uow: UnitOfWork
) -> None:
    await revoke_in(uow, event.message.appointment_id, datetime.now(UTC))


async def on_appointment_rescheduled(
    event: Event[booking.AppointmentRescheduled], uow: UnitOfWork
) -> None:
    """The old room is revoked (its tokens die with it); the new times get a new session."""
    message = event.message
    await revoke_in(uow, message.appointment_id, datetime.now(UTC))
    context = SessionContext(
        site_id=message.site_id,
        responder_id=message.responder_id,
        specialty_code=message.specialty_code,
        act=message.act,
        departement=message.departement,
        mode=message.mode,
        assistance=message.assistance,
        resource_id=message.resource_id,
        appointment_id=message.appointment_id,
    )
    if not (message.HasField("start") and message.HasField("end")):
        raise InvalidEventError("AppointmentBooked without a start and an end")
    start, end = message.start.ToDatetime(tzinfo=UTC), message.end.ToDatetime(tzinfo=UTC)
    if end <= start:
        raise InvalidEventError("AppointmentBooked ends before it starts")
    await schedule_in(uow, context, start, end)


async def on_consultation_accepted(
    event: Event[booking.ConsultationAccepted], uow: UnitOfWork
) -> None:
    """Same session as the AppointmentBooked that follows (keyed by its appointment id)."""
    message = event.message
    start = message.accepted_at.ToDatetime(tzinfo=UTC)
    context = SessionContext(
        site_id=message.site_id,
        responder_id=message.responder_id,
        specialty_code=message.specialty_code,
        act=message.act,
        departement=message.departement,
        mode=types_pb2.CONSULTATION_MODE_ON_DEMAND,
        assistance=message.assistance,
        resource_id=message.resource_id,
        appointment_id=message.appointment_id or None,
        consultation_id=message.consultation_id,
    )
    await schedule_in(uow, context, start, start + ON_DEMAND_LENGTH)


def booking_consumer() -> EventConsumer:
    return EventConsumer(
        "session-signalling.booking",
        handlers={
            booking.AppointmentBooked: on_appointment_booked,
            booking.AppointmentCancelled: on_appointment_cancelled,
            booking.AppointmentRescheduled: on_appointment_rescheduled,
            booking.ConsultationAccepted: on_consultation_accepted,
        },
    )
