"""Guards on the event contracts generated from proto/ (catalogue in proto/README.md)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

import maillage
from maillage.booking.v1 import events_pb2 as booking
from maillage.common.v1 import options_pb2, types_pb2
from maillage.directory.v1 import events_pb2 as directory
from maillage.session_signalling.v1 import events_pb2 as sessions
from maillage.telemetry.v1 import events_pb2 as telemetry

README = Path(__file__).resolve().parents[3] / "proto" / "README.md"

EXPECTED_TOPICS = {
    "maillage.directory.v1.ProfessionalChanged": "directory.professionals",
    "maillage.directory.v1.SiteChanged": "directory.sites",
    "maillage.directory.v1.KioskChanged": "directory.kiosks",
    "maillage.booking.v1.AppointmentHeld": "booking.appointments",
    "maillage.booking.v1.AppointmentBooked": "booking.appointments",
    "maillage.booking.v1.AppointmentCancelled": "booking.appointments",
    "maillage.booking.v1.AppointmentRescheduled": "booking.appointments",
    "maillage.booking.v1.AppointmentFulfilled": "booking.appointments",
    "maillage.booking.v1.AppointmentNoShow": "booking.appointments",
    "maillage.booking.v1.ConsultationRequested": "booking.consultations",
    "maillage.booking.v1.ConsultationOffered": "booking.consultations",
    "maillage.booking.v1.ConsultationAccepted": "booking.consultations",
    "maillage.booking.v1.ConsultationExpired": "booking.consultations",
    "maillage.booking.v1.ExpertiseRequested": "booking.expertises",
    "maillage.booking.v1.ExpertiseAccepted": "booking.expertises",
    "maillage.booking.v1.ExpertiseAnswered": "booking.expertises",
    "maillage.booking.v1.ExpertiseOverdue": "booking.expertises",
    "maillage.booking.v1.ExpertiseRejected": "booking.expertises",
    "maillage.booking.v1.ExpertiseClosed": "booking.expertises",
    "maillage.session_signalling.v1.SessionScheduled": "sessions.lifecycle",
    "maillage.session_signalling.v1.PatientWaiting": "sessions.lifecycle",
    "maillage.session_signalling.v1.ParticipantJoined": "sessions.lifecycle",
    "maillage.session_signalling.v1.ParticipantLeft": "sessions.lifecycle",
    "maillage.session_signalling.v1.SessionStarted": "sessions.lifecycle",
    "maillage.session_signalling.v1.SessionEnded": "sessions.lifecycle",
    "maillage.session_signalling.v1.SessionNoShow": "sessions.lifecycle",
    "maillage.session_signalling.v1.SessionFailed": "sessions.lifecycle",
    "maillage.session_signalling.v1.SessionQualityReported": "sessions.quality",
    "maillage.telemetry.v1.MeasurementBatchIngested": "telemetry.measurements",
    "maillage.telemetry.v1.KioskHeartbeatReceived": "telemetry.heartbeats",
    "maillage.telemetry.v1.CallQualityReported": "telemetry.call-quality",
    "maillage.telemetry.v1.AlertRaised": "telemetry.alerts",
    "maillage.telemetry.v1.AlertCleared": "telemetry.alerts",
    "maillage.telemetry.v1.AlertAcknowledged": "telemetry.alerts",
}

# Kafka key of each topic: a field path of every event published on it.
KEY_FIELDS = {
    "directory.professionals": "professional.id",
    "directory.sites": "site.id",
    "directory.kiosks": "kiosk.id",
    "booking.appointments": "appointment_id",
    "booking.consultations": "consultation_id",
    "booking.expertises": "expertise_id",
    "sessions.lifecycle": "session_id",
    "sessions.quality": "session_id",
    "telemetry.measurements": "kiosk_id",
    "telemetry.heartbeats": "kiosk_id",
    "telemetry.call-quality": "kiosk_id",
    "telemetry.alerts": "alert_id",
}

# Packages that must never carry a patient identity (only the opaque `patient_ref`).
PATIENT_FREE_PACKAGES = (
    "maillage.booking.v1",
    "maillage.session_signalling.v1",
    "maillage.telemetry.v1",
)
# Context every booking and session event carries so that statistics needs no lookup.
STATISTICS_CONTEXT = ("site_id", "responder_id", "specialty_code", "act", "departement")

_IDENTITY_WORDS = re.compile(
    r"(^|_)(ins|nir|nss|ssn|birth\w*|dob|name|names|surname|firstname|lastname|"
    r"address|email|phone)(_|$)"
)


def looks_like_patient_identity(field_name: str) -> bool:
    """True for `ins`, `patient_nir`, `birth_date`, `first_name`, `family_name`, ..."""
    return _IDENTITY_WORDS.search(field_name.lower()) is not None


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


def events_modules() -> list[ModuleType]:
    names = sorted(
        module.name
        for module in pkgutil.walk_packages(maillage.__path__, "maillage.")
        if module.name.endswith(".events_pb2")
    )
    return [importlib.import_module(name) for name in names]


def topic_of(descriptor: Descriptor) -> str:
    return str(descriptor.GetOptions().Extensions[options_pb2.topic])


def events() -> dict[str, Descriptor]:
    """Top-level messages carrying the topic option, by full name."""
    return {
        descriptor.full_name: descriptor
        for module in events_modules()
        for descriptor in module.DESCRIPTOR.message_types_by_name.values()
        if descriptor.GetOptions().HasExtension(options_pb2.topic)
    }


def reachable_fields(descriptor: Descriptor, seen: set[str] | None = None) -> Iterator[str]:
    """`Message.field` for every field of the message and of the messages it contains."""
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        yield f"{descriptor.full_name}.{field.name}"
        if field.message_type is not None:
            yield from reachable_fields(field.message_type, seen)


def all_enums() -> Iterator[EnumDescriptor]:
    def nested(descriptor: Descriptor) -> Iterator[EnumDescriptor]:
        yield from descriptor.enum_types
        for child in descriptor.nested_types:
            yield from nested(child)

    for module in [types_pb2, *events_modules()]:
        yield from module.DESCRIPTOR.enum_types_by_name.values()
        for message in module.DESCRIPTOR.message_types_by_name.values():
            yield from nested(message)


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------


def test_every_producer_package_is_discovered() -> None:
    packages = {module.DESCRIPTOR.package for module in events_modules()}
    assert packages == {
        "maillage.directory.v1",
        "maillage.booking.v1",
        "maillage.session_signalling.v1",
        "maillage.telemetry.v1",
    }


def test_every_event_has_a_non_empty_topic() -> None:
    found = events()
    assert found, "no event found: discovery is broken"
    for name, descriptor in found.items():
        assert topic_of(descriptor).strip(), f"{name} has an empty topic"


def test_topics_match_the_catalogue() -> None:
    found = {name: topic_of(descriptor) for name, descriptor in events().items()}
    assert found == EXPECTED_TOPICS


def test_every_topic_is_documented_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    for topic in sorted(set(EXPECTED_TOPICS.values())):
        assert f"| `{topic}` |" in readme, f"{topic} missing from the catalogue in {README}"
    for name in EXPECTED_TOPICS:
        assert f"`{name.rsplit('.', 1)[1]}`" in readme, f"{name} missing from {README}"


def test_every_event_has_its_topic_key() -> None:
    for name, descriptor in events().items():
        *parents, leaf = KEY_FIELDS[topic_of(descriptor)].split(".")
        current = descriptor
        for part in parents:
            nested = current.fields_by_name[part].message_type
            assert nested is not None, f"{name}: key path {part!r} is not a message"
            current = nested
        key = current.fields_by_name.get(leaf)
        assert key is not None, f"{name} lacks key field {leaf!r}"
        assert key.type == FieldDescriptor.TYPE_STRING, f"{name}: key {leaf!r} is not a string"


# --------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------


def test_identity_detector_flags_identity_fields_only() -> None:
    for bad in ("ins", "patient_nir", "birth_date", "date_of_birth", "first_name", "family_name"):
        assert looks_like_patient_identity(bad), bad
    for good in ("patient_ref", "commune_insee", "site_id", "specialty_code", "insurance_code"):
        assert not looks_like_patient_identity(good), good


def test_no_patient_identity_outside_directory() -> None:
    offending = [
        path
        for name, descriptor in events().items()
        if name.startswith(PATIENT_FREE_PACKAGES)
        for path in reachable_fields(descriptor)
        if looks_like_patient_identity(path.rsplit(".", 1)[1])
    ]
    assert offending == []


def test_booking_and_session_events_carry_the_statistics_context() -> None:
    for name, descriptor in events().items():
        if name.startswith(("maillage.booking.", "maillage.session_signalling.")):
            missing = [f for f in STATISTICS_CONTEXT if f not in descriptor.fields_by_name]
            assert missing == [], f"{name} lacks {missing}"


def test_enum_zero_values_are_unspecified() -> None:
    for enum in all_enums():
        zero = enum.values_by_number[0].name
        assert zero.endswith("_UNSPECIFIED"), f"{enum.full_name}: zero value is {zero}"


# --------------------------------------------------------------------------------------------
# Round trips, one event per producing package
# --------------------------------------------------------------------------------------------

NOW = datetime(2025, 11, 22, 9, 52, 0, 123000, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def sample_events() -> list[Message]:
    return [
        directory.ProfessionalChanged(
            change=directory.CHANGE_UPDATED,
            version=7,
            changed_at=ts(NOW),
            professional=directory.Professional(
                id="5b0c9f0e-0000-4000-8000-000000000001",
                rpps="10101010101",
                family_name="Muller",
                given_name="Anne",
                profession_code="10",
                specialty_codes=["SM26"],
                acts=[types_pb2.ACT_TELECONSULTATION, types_pb2.ACT_TELEEXPERTISE],
                departements=["67", "2A"],
                practice_locations=[
                    directory.PracticeLocation(
                        name="Cabinet de Saverne",
                        commune_insee="67437",
                        location=types_pb2.GeoPoint(latitude=48.741, longitude=7.362),
                    )
                ],
                languages=["fr", "de"],
                usual_expertise_response_hours=48,
                accepts_external_patients=True,
                active=True,
            ),
        ),
        booking.AppointmentBooked(
            appointment_id="a-1",
            site_id="s-1",
            responder_id="p-1",
            specialty_code="SM26",
            act=types_pb2.ACT_TELECONSULTATION,
            departement="67",
            patient_ref="pt_7f3a",
            mode=types_pb2.CONSULTATION_MODE_SCHEDULED,
            assistance=types_pb2.ASSISTANCE_ASSISTED,
            resource_id="k-1",
            start=ts(NOW),
            end=ts(NOW + timedelta(minutes=20)),
            booked_at=ts(NOW - timedelta(days=2)),
        ),
        sessions.SessionEnded(
            session_id="sess-1",
            appointment_id="a-1",
            site_id="s-1",
            responder_id="p-1",
            specialty_code="SM26",
            act=types_pb2.ACT_TELECONSULTATION,
            departement="67",
            started_at=ts(NOW),
            ended_at=ts(NOW + timedelta(minutes=18)),
            waiting_seconds=95,
            live_seconds=1080,
            total_seconds=1175,
            participants=[
                sessions.Participant(participant_id="x1", role=types_pb2.PARTICIPANT_ROLE_PATIENT),
                sessions.Participant(
                    participant_id="x2",
                    role=types_pb2.PARTICIPANT_ROLE_RESPONDER,
                    professional_id="p-1",
                ),
            ],
            ended_by=sessions.ENDED_BY_RESPONDER,
        ),
        telemetry.MeasurementBatchIngested(
            batch_id="b-1",
            kiosk_id="k-1",
            site_id="s-1",
            departement="67",
            ingested_at=ts(NOW),
            measurements=[
                telemetry.Measurement(
                    measurement_id="m-1",
                    device_id="bp-42",
                    device_kind=types_pb2.DEVICE_KIND_BLOOD_PRESSURE_MONITOR,
                    kiosk_id="k-1",
                    site_id="s-1",
                    patient_ref="pt_7f3a",
                    loinc_code="85354-9",
                    components=[
                        telemetry.MeasurementComponent(
                            loinc_code="8480-6", ucum_unit="mm[Hg]", value=142
                        ),
                        telemetry.MeasurementComponent(
                            loinc_code="8462-4", ucum_unit="mm[Hg]", value=91
                        ),
                    ],
                    measured_at=ts(NOW),
                    received_at=ts(NOW + timedelta(seconds=2)),
                    abnormal=True,
                )
            ],
        ),
    ]


def test_round_trip_one_event_per_package() -> None:
    samples = sample_events()
    assert {s.DESCRIPTOR.file.package for s in samples} == set(PATIENT_FREE_PACKAGES) | {
        "maillage.directory.v1"
    }
    for event in samples:
        data = event.SerializeToString(deterministic=True)
        parsed = type(event).FromString(data)
        assert parsed == event
        assert parsed.SerializeToString(deterministic=True) == data


def test_round_trip_keeps_values_and_oneof() -> None:
    [_, booked, ended, batch] = sample_events()
    assert isinstance(booked, booking.AppointmentBooked)
    assert isinstance(ended, sessions.SessionEnded)
    assert isinstance(batch, telemetry.MeasurementBatchIngested)
    parsed_booked = booking.AppointmentBooked.FromString(booked.SerializeToString())
    assert parsed_booked.end.ToDatetime(tzinfo=UTC) - parsed_booked.start.ToDatetime(
        tzinfo=UTC
    ) == timedelta(minutes=20)
    parsed_ended = sessions.SessionEnded.FromString(ended.SerializeToString())
    assert parsed_ended.WhichOneof("origin") == "appointment_id"
    parsed_batch = telemetry.MeasurementBatchIngested.FromString(batch.SerializeToString())
    assert [c.value for c in parsed_batch.measurements[0].components] == [142, 91]
    delay = Duration()
    delay.FromTimedelta(timedelta(hours=48))
    expertise = booking.ExpertiseRequested(expertise_id="e-1", requested_response_delay=delay)
    parsed = booking.ExpertiseRequested.FromString(expertise.SerializeToString())
    assert parsed.requested_response_delay.ToTimedelta() == timedelta(hours=48)
