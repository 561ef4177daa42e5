"""Conversions between the service's values and the protobuf contract."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from maillage.common.v1 import types_pb2
from maillage.directory.v1 import events_pb2 as directory_pb2
from maillage.telemetry.v1 import events_pb2

DEVICE_KINDS: tuple[str, ...] = tuple(
    name.removeprefix("DEVICE_KIND_").lower()
    for name in types_pb2.DeviceKind.keys()  # noqa: SIM118 - an EnumTypeWrapper
    if name != "DEVICE_KIND_UNSPECIFIED"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Enum lookups by name on the ingest hot path: one dict access instead of formatting a
# name and asking the descriptor for each item.
_DEVICE_KIND_VALUES: dict[str, types_pb2.DeviceKind.ValueType] = {
    name: types_pb2.DeviceKind.Value(f"DEVICE_KIND_{name.upper()}") for name in DEVICE_KINDS
}
DEVICE_KIND_NAMES: dict[int, str] = {value: name for name, value in _DEVICE_KIND_VALUES.items()}
"""Device kind names by protobuf value (unspecified: absent)."""


def timestamp(at: datetime) -> Timestamp:
    # Integer arithmetic: exact to the microsecond and cheaper than FromDatetime on the
    # ingest hot path.
    delta = at - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def set_timestamp(stamp: Timestamp, at: datetime) -> None:
    """Write `at` into a message's Timestamp field in place (no intermediate message)."""
    delta = at - _EPOCH
    stamp.seconds = delta.days * 86_400 + delta.seconds
    stamp.nanos = delta.microseconds * 1000


def instant(stamp: Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def epoch_microseconds(stamp: Timestamp) -> int:
    """Exact microseconds since the epoch (PostgreSQL turns them into a timestamptz)."""
    return stamp.seconds * 1_000_000 + stamp.nanos // 1000


def _enum_name(enum: Any, prefix: str, value: int) -> str:
    if value == 0:
        return ""
    return str(enum.Name(value)).removeprefix(f"{prefix}_").lower()


def device_kind(name: str | None) -> types_pb2.DeviceKind.ValueType:
    if not name:
        return types_pb2.DEVICE_KIND_UNSPECIFIED
    return _DEVICE_KIND_VALUES[name]


def device_kind_name(value: int) -> str:
    return DEVICE_KIND_NAMES.get(value, "")


def kiosk_status(name: str) -> events_pb2.KioskStatus.ValueType:
    return events_pb2.KioskStatus.Value(f"KIOSK_STATUS_{name.upper()}")


def peripheral_status(name: str) -> events_pb2.PeripheralStatus.ValueType:
    return events_pb2.PeripheralStatus.Value(f"PERIPHERAL_STATUS_{name.upper()}")


def quality_level(name: str | None) -> types_pb2.QualityLevel.ValueType:
    if not name:
        return types_pb2.QUALITY_LEVEL_UNSPECIFIED
    return types_pb2.QualityLevel.Value(f"QUALITY_LEVEL_{name.upper()}")


def participant_role(name: str | None) -> types_pb2.ParticipantRole.ValueType:
    if not name:
        return types_pb2.PARTICIPANT_ROLE_UNSPECIFIED
    return types_pb2.ParticipantRole.Value(f"PARTICIPANT_ROLE_{name.upper()}")


def site_category_name(value: int) -> str:
    return _enum_name(directory_pb2.SiteCategory, "SITE_CATEGORY", value)


def _alert_fields(alert: Mapping[Any, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "alert_id": str(alert["alert_id"]),
        "kind": events_pb2.AlertKind.Value(f"ALERT_KIND_{alert['kind'].upper()}"),
        "severity": events_pb2.Severity.Value(f"SEVERITY_{alert['severity'].upper()}"),
        "kiosk_id": alert["kiosk_id"],
        "site_id": alert["site_id"],
        "departement": alert["departement"],
        "device_id": alert["device_id"],
        "device_kind": device_kind(alert["device_kind"]),
        "patient_ref": alert["patient_ref"],
        "measurement_id": alert["measurement_id"],
        "loinc_code": alert["loinc_code"],
        "ucum_unit": alert["ucum_unit"],
        "raised_at": timestamp(alert["raised_at"]),
    }
    for optional in ("threshold", "value"):
        if alert[optional] is not None:
            fields[optional] = alert[optional]
    return fields


def alert_raised(alert: Mapping[Any, Any]) -> events_pb2.AlertRaised:
    return events_pb2.AlertRaised(**_alert_fields(alert))


def alert_cleared(alert: Mapping[Any, Any]) -> events_pb2.AlertCleared:
    return events_pb2.AlertCleared(
        **_alert_fields(alert),
        cleared_at=timestamp(alert["cleared_at"]),
        reason=events_pb2.ClearReason.Value(f"CLEAR_REASON_{alert['clear_reason'].upper()}"),
    )


def alert_acknowledged(alert: Mapping[Any, Any]) -> events_pb2.AlertAcknowledged:
    return events_pb2.AlertAcknowledged(
        **_alert_fields(alert),
        acknowledged_at=timestamp(alert["acknowledged_at"]),
        acknowledged_by=alert["acknowledged_by"],
        # The comment stays here: free text may name a patient (never on Kafka).
        has_comment=bool(alert["acknowledgement_comment"]),
    )
