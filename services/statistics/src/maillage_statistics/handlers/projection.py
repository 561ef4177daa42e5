"""Event → projection rows: what each event tells the observatory (no I/O here).

The same function feeds the live consumer (one event per transaction) and the rebuild
(batches), so both build exactly the same projections.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from maillage.booking.v1 import events_pb2 as booking
from maillage.common.v1 import types_pb2 as common
from maillage.directory.v1 import events_pb2 as directory
from maillage.session_signalling.v1 import events_pb2 as sessions
from maillage.telemetry.v1 import events_pb2 as telemetry
from maillage_common.events.envelope import Event
from maillage_statistics.db.projections import Write

Projector = Callable[[Event[Any]], list[Write]]


def label(enum: EnumDescriptor, value: int) -> str:
    """`ACT_TELECONSULTATION` → `teleconsultation`; unspecified → ''."""
    key = (enum.full_name, value)
    found = _LABELS.get(key)
    if found is None:
        found = _LABELS[key] = _label(enum, value)
    return found


_LABELS: dict[tuple[str, int], str] = {}


def _label(enum: EnumDescriptor, value: int) -> str:
    name = enum.values_by_number[value].name if value in enum.values_by_number else ""
    prefix = _enum_prefix(enum.name)
    short = name.removeprefix(prefix).lower()
    return "" if short == "unspecified" else short


def _enum_prefix(enum_name: str) -> str:
    snake = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(enum_name))
    return snake.upper() + "_"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    # Integer arithmetic: the same instant as `ToDatetime` (nanoseconds truncated), at a
    # fifth of its cost; a rebuild converts millions of them.
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


ACT = common.Act.DESCRIPTOR
MODE = common.ConsultationMode.DESCRIPTOR
ASSISTANCE = common.Assistance.DESCRIPTOR
LEVEL = common.QualityLevel.DESCRIPTOR


def _context(event: Event[Any]) -> dict[str, Any]:
    message = event.message
    return {
        "site_id": message.site_id,
        "responder_id": message.responder_id,
        "specialty_code": message.specialty_code,
        "act": label(ACT, message.act),
        "departement": message.departement,
        "context_at": event.time,
    }


# --- directory snapshots ------------------------------------------------------------------


def site_changed(event: Event[directory.SiteChanged]) -> list[Write]:
    site = event.message.site
    return [
        Write(
            "site",
            {
                "site_id": site.id,
                "version": event.message.version,
                "name": site.name,
                "category": label(directory.SiteCategory.DESCRIPTOR, site.category),
                "deployment_model": label(
                    directory.DeploymentModel.DESCRIPTOR, site.deployment_model
                ),
                "commune_insee": site.commune_insee,
                "departement": site.departement,
                "rural": site.rural,
                "under_served": site.under_served,
                "active": site.active,
                "specialties_needed": list(site.specialties_needed),
                "changed_at": instant(event.message, "changed_at") or event.time,
            },
        )
    ]


def professional_changed(event: Event[directory.ProfessionalChanged]) -> list[Write]:
    # Only what the indicators need: names and contacts stay in the directory.
    professional = event.message.professional
    return [
        Write(
            "professional",
            {
                "professional_id": professional.id,
                "version": event.message.version,
                "profession_code": professional.profession_code,
                "specialty_codes": list(professional.specialty_codes),
                "departements": list(professional.departements),
                "active": professional.active,
                "changed_at": instant(event.message, "changed_at") or event.time,
            },
        )
    ]


def kiosk_changed(event: Event[directory.KioskChanged]) -> list[Write]:
    kiosk = event.message.kiosk
    return [
        Write(
            "kiosk",
            {
                "kiosk_id": kiosk.id,
                "version": event.message.version,
                "site_id": kiosk.site_id,
                "active": kiosk.active,
                "changed_at": instant(event.message, "changed_at") or event.time,
            },
        )
    ]


# --- booking ------------------------------------------------------------------------------

_APPOINTMENT_FACT = {
    "AppointmentHeld": ("held_at", "held_at"),
    "AppointmentBooked": ("booked_at", "booked_at"),
    "AppointmentCancelled": ("cancelled_at", "cancelled_at"),
    "AppointmentRescheduled": ("booked_at", ""),
    "AppointmentFulfilled": ("fulfilled_at", "recorded_at"),
    "AppointmentNoShow": ("no_show_at", "recorded_at"),
}


def appointment_event(event: Event[Any]) -> list[Write]:
    message = event.message
    fact, field = _APPOINTMENT_FACT[message.DESCRIPTOR.name]
    row = {
        "appointment_id": message.appointment_id,
        **_context(event),
        "mode": label(MODE, message.mode),
        "assistance": label(ASSISTANCE, message.assistance),
        "start_at": instant(message, "start"),
        "session_id": getattr(message, "session_id", ""),
    }
    # A reschedule implies the appointment was booked, but says nothing about when.
    if field:
        row[fact] = instant(message, field) or event.time
    return [Write("appointment", row)]


def consultation_event(event: Event[Any]) -> list[Write]:
    message = event.message
    row: dict[str, Any] = {
        "consultation_id": message.consultation_id,
        **_context(event),
        "responder_id": "",
        "assistance": label(ASSISTANCE, message.assistance),
        "requested_at": instant(message, "requested_at"),
    }
    kind = message.DESCRIPTOR.name
    if kind == "ConsultationAccepted":
        row["responder_id"] = message.responder_id
        row["accepted_at"] = instant(message, "accepted_at") or event.time
        row["time_to_accept_seconds"] = seconds(message.time_to_accept)
    elif kind == "ConsultationExpired":
        row["expired_at"] = instant(message, "expired_at") or event.time
        row["offers_made"] = message.offers_made
    elif kind == "ConsultationOffered":
        row["offers_made"] = message.attempt
    return [Write("consultation", row)]


_EXPERTISE_FACT = {
    "ExpertiseRequested": ("", ""),
    "ExpertiseAccepted": ("accepted_at", "accepted_at"),
    "ExpertiseAnswered": ("answered_at", "answered_at"),
    "ExpertiseRejected": ("rejected_at", "rejected_at"),
    "ExpertiseClosed": ("closed_at", "closed_at"),
}


def expertise_event(event: Event[Any]) -> list[Write]:
    message = event.message
    row: dict[str, Any] = {
        "expertise_id": message.expertise_id,
        **_context(event),
        "requested_at": instant(message, "requested_at"),
        "requested_delay_seconds": (
            seconds(message.requested_response_delay)
            if message.HasField("requested_response_delay")
            else None
        ),
    }
    fact, field = _EXPERTISE_FACT[message.DESCRIPTOR.name]
    if fact:
        row[fact] = instant(message, field) or event.time
    if message.DESCRIPTOR.name == "ExpertiseAnswered":
        row["response_seconds"] = seconds(message.response_time)
    if message.DESCRIPTOR.name == "ExpertiseClosed":
        row["outcome"] = label(booking.ExpertiseOutcome.DESCRIPTOR, message.outcome)
    return [Write("expertise", row)]


# --- sessions -----------------------------------------------------------------------------


def _session_row(event: Event[Any]) -> dict[str, Any]:
    message = event.message
    origin = message.WhichOneof("origin") or ""
    return {
        "session_id": message.session_id,
        **_context(event),
        "mode": label(MODE, message.mode),
        "assistance": label(ASSISTANCE, message.assistance),
        "appointment_id": message.appointment_id if origin == "appointment_id" else "",
        "consultation_id": message.consultation_id if origin == "consultation_id" else "",
    }


def session_event(event: Event[Any]) -> list[Write]:
    message = event.message
    row = _session_row(event)
    kind = message.DESCRIPTOR.name
    if kind == "SessionScheduled":
        row["scheduled_start"] = instant(message, "scheduled_start")
    elif kind == "SessionStarted":
        row["started_at"] = instant(message, "started_at") or event.time
    elif kind == "SessionEnded":
        row["started_at"] = instant(message, "started_at")
        row["ended_at"] = instant(message, "ended_at") or event.time
        row["live_seconds"] = message.live_seconds
        row["waiting_seconds"] = message.waiting_seconds
    elif kind == "SessionNoShow":
        row["scheduled_start"] = instant(message, "scheduled_start")
        row["no_show_at"] = instant(message, "declared_at") or event.time
    elif kind == "SessionFailed":
        row["failed_at"] = instant(message, "failed_at") or event.time
        row["failure_reason"] = label(sessions.FailureReason.DESCRIPTOR, message.reason)
    else:
        # Waiting, joined, left: the context is all they add to the aggregate.
        pass
    return [Write("session", row)]


def session_quality(event: Event[sessions.SessionQualityReported]) -> list[Write]:
    message = event.message
    return _quality_sample(event, message, "server")


def _quality_sample(
    event: Event[Any],
    message: sessions.SessionQualityReported | telemetry.CallQualityReported,
    source: str,
) -> list[Write]:
    """The same sample whether the signalling server or the kiosk reported it."""
    return [
        Write(
            "quality_sample",
            {
                "event_id": event.id,
                "source": source,
                "session_id": message.session_id,
                "site_id": message.site_id,
                "departement": message.departement,
                "measured_at": instant(message, "measured_at") or event.time,
                "level": label(LEVEL, message.level),
                "rtt_ms": message.rtt_ms,
                "loss_ratio": message.loss_ratio,
            },
        )
    ]


# --- telemetry ----------------------------------------------------------------------------


def call_quality(event: Event[telemetry.CallQualityReported]) -> list[Write]:
    message = event.message
    return _quality_sample(event, message, "kiosk")


def measurements(event: Event[telemetry.MeasurementBatchIngested]) -> list[Write]:
    # Counted by measurement id (the kiosk's dedupe key): a resent batch adds nothing.
    batch = event.message
    return [
        Write(
            "measurement",
            {
                "measurement_id": measurement.measurement_id,
                "kiosk_id": batch.kiosk_id,
                "site_id": batch.site_id,
                "departement": batch.departement,
                "loinc_code": measurement.loinc_code,
                "abnormal": measurement.abnormal,
                "measured_at": instant(measurement, "measured_at") or event.time,
            },
        )
        for measurement in batch.measurements
    ]


def heartbeat(event: Event[telemetry.KioskHeartbeatReceived]) -> list[Write]:
    message = event.message
    return [
        Write(
            "kiosk_health",
            {
                "kiosk_id": message.kiosk_id,
                "site_id": message.site_id,
                "departement": message.departement,
                "status": label(telemetry.KioskStatus.DESCRIPTOR, message.status),
                "last_seen_at": instant(message, "received_at") or event.time,
            },
        )
    ]


def alert_event(event: Event[Any]) -> list[Write]:
    message = event.message
    row: dict[str, Any] = {
        "alert_id": message.alert_id,
        "kind": label(telemetry.AlertKind.DESCRIPTOR, message.kind),
        "severity": label(telemetry.Severity.DESCRIPTOR, message.severity),
        "kiosk_id": message.kiosk_id,
        "site_id": message.site_id,
        "departement": message.departement,
        "raised_at": instant(message, "raised_at"),
        "context_at": event.time,
    }
    if message.DESCRIPTOR.name == "AlertCleared":
        row["cleared_at"] = instant(message, "cleared_at") or event.time
    return [Write("alert", row)]


PROJECTORS: dict[type[Message], Projector] = {
    directory.SiteChanged: site_changed,
    directory.ProfessionalChanged: professional_changed,
    directory.KioskChanged: kiosk_changed,
    **{
        kind: appointment_event
        for kind in (
            booking.AppointmentHeld,
            booking.AppointmentBooked,
            booking.AppointmentCancelled,
            booking.AppointmentRescheduled,
            booking.AppointmentFulfilled,
            booking.AppointmentNoShow,
        )
    },
    **{
        kind: consultation_event
        for kind in (
            booking.ConsultationRequested,
            booking.ConsultationOffered,
            booking.ConsultationAccepted,
            booking.ConsultationExpired,
        )
    },
    **{
        kind: expertise_event
        for kind in (
            booking.ExpertiseRequested,
            booking.ExpertiseAccepted,
            booking.ExpertiseAnswered,
            booking.ExpertiseRejected,
            booking.ExpertiseClosed,
        )
    },
    **{
        kind: session_event
        for kind in (
            sessions.SessionScheduled,
            sessions.PatientWaiting,
            sessions.ParticipantJoined,
            sessions.ParticipantLeft,
            sessions.SessionStarted,
            sessions.SessionEnded,
            sessions.SessionNoShow,
            sessions.SessionFailed,
        )
    },
    sessions.SessionQualityReported: session_quality,
    telemetry.CallQualityReported: call_quality,
    telemetry.MeasurementBatchIngested: measurements,
    telemetry.KioskHeartbeatReceived: heartbeat,
    telemetry.AlertRaised: alert_event,
    telemetry.AlertCleared: alert_event,
}

PROJECTORS_BY_TYPE: dict[str, Projector] = {
    kind.DESCRIPTOR.full_name: projector for kind, projector in PROJECTORS.items()
}
