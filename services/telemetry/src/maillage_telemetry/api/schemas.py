"""HTTP schemas (pydantic v2): XCreate in, XRead out."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, NotRequired

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    with_config,
)

# pydantic needs typing_extensions' TypedDict before Python 3.12.
from typing_extensions import TypedDict

from maillage_telemetry.domain.fleet import (
    FleetStatus,
    NetworkQuality,
    PeripheralState,
    ReportedStatus,
)
from maillage_telemetry.use_cases.contract import DEVICE_KINDS
from maillage_telemetry.use_cases.ingest import Outcome

Text = Annotated[str, Field(min_length=1, max_length=128)]
Code = Annotated[str, Field(min_length=1, max_length=32)]


def _known_device_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in DEVICE_KINDS:
        raise ValueError(f"must be one of {', '.join(DEVICE_KINDS)}")
    return kind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ComponentCreate(_Strict):
    loinc_code: Code
    ucum_unit: Code
    value: float


class MeasurementCreate(_Strict):
    """One measurement item; validated on its own so a bad item never sinks the batch."""

    measurement_id: uuid.UUID
    device_id: Text
    device_kind: str | None = None
    patient_ref: Text
    loinc_code: Code
    ucum_unit: Code
    value: float | None = None
    components: list[ComponentCreate] = Field(default_factory=list, max_length=8)
    measured_at: AwareDatetime
    session_id: Text | None = None

    _device_kind = field_validator("device_kind")(_known_device_kind)


# What the upload route validates with (TypeAdapters): the same fields and rules as
# MeasurementCreate (which documents them in the OpenAPI schema), as TypedDicts, so that
# pydantic-core answers plain dicts without building a model per item (a third of the
# cost of validating). tests/unit/test_upload_schema.py keeps the two in step.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


@with_config(_STRICT)
class ComponentItem(TypedDict):
    loinc_code: Code
    ucum_unit: Code
    value: float


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(text: str) -> str:
    """The UUID as text in canonical form: as sent when it already is (the usual case:
    no UUID object built then formatted again per item), normalised otherwise."""
    if _CANONICAL_UUID.fullmatch(text):
        return text
    return str(uuid.UUID(text))


@with_config(_STRICT)
class MeasurementItem(TypedDict):
    measurement_id: Annotated[str, AfterValidator(canonical_uuid)]
    device_id: Text
    device_kind: NotRequired[Annotated[str | None, AfterValidator(_known_device_kind)]]
    patient_ref: Text
    loinc_code: Code
    ucum_unit: Code
    value: NotRequired[float | None]
    components: NotRequired[Annotated[list[ComponentItem], Field(max_length=8)]]
    measured_at: AwareDatetime
    session_id: NotRequired[Text | None]


class UploadItems(TypedDict):
    """The fast path of an upload: every item valid (validated in one pass)."""

    kiosk_id: NotRequired[Text | None]
    items: Annotated[list[MeasurementItem], Field(min_length=1)]


class MeasurementBatchCreate(BaseModel):
    """Up to TELEMETRY_MAX_BATCH_ITEMS items. A kiosk is named by its token; a service
    uploading on a kiosk's behalf names it in `kiosk_id`."""

    kiosk_id: Text | None = None
    items: list[Any] = Field(min_length=1)


class FieldErrorRead(BaseModel):
    field: str
    reason: str


class ItemRead(BaseModel):
    index: int
    measurement_id: str | None
    outcome: Outcome
    abnormal: bool
    errors: list[FieldErrorRead]


class MeasurementBatchRead(BaseModel):
    batch_id: uuid.UUID
    accepted: int
    duplicate: int
    rejected: int
    items: list[ItemRead]


class PeripheralCreate(_Strict):
    kind: str
    device_id: Text
    status: PeripheralState

    _kind = field_validator("kind")(_known_device_kind)


class HeartbeatCreate(_Strict):
    kiosk_id: Text | None = None
    status: ReportedStatus
    software_version: Annotated[str, Field(min_length=1, max_length=64)]
    network_quality: NetworkQuality | None = None
    rtt_ms: Annotated[int, Field(ge=0, le=600_000)] | None = None
    peripherals: list[PeripheralCreate] = Field(default_factory=list, max_length=32)
    sent_at: AwareDatetime


class CallQualityCreate(_Strict):
    kiosk_id: Text | None = None
    session_id: Text
    role: str | None = Field(default=None, pattern="^(patient|responder|assistant|companion)$")
    measured_at: AwareDatetime
    rtt_ms: Annotated[int, Field(ge=0, le=600_000)]
    jitter_ms: Annotated[int, Field(ge=0, le=600_000)]
    loss_ratio: Annotated[float, Field(ge=0, le=1)]
    bitrate_kbps: Annotated[int, Field(ge=0, le=1_000_000)]
    level: NetworkQuality


class ConsentUpdate(_Strict):
    granted: bool


class ConsentRead(BaseModel):
    patient_ref: str
    granted: bool
    recorded_at: datetime
    recorded_by: str


class FleetGroupRead(BaseModel):
    departement: str
    site_category: str
    online: int
    degraded: int
    offline: int
    peripherals_in_fault: int


class FleetOverviewRead(BaseModel):
    generated_at: datetime
    groups: list[FleetGroupRead]


class PeripheralRead(BaseModel):
    kind: str
    device_id: str
    status: str


class HeartbeatRead(BaseModel):
    received_at: datetime
    sent_at: datetime
    reported_status: str
    software_version: str
    network_quality: str | None
    rtt_ms: int | None
    peripherals: list[PeripheralRead]


class AlertRead(BaseModel):
    """An alert; threshold alerts name no patient here (see the measurement history)."""

    alert_id: uuid.UUID
    kind: str
    severity: str
    kiosk_id: str
    site_id: str
    departement: str
    device_id: str
    device_kind: str
    loinc_code: str
    ucum_unit: str
    threshold: float | None
    value: float | None
    raised_at: datetime
    cleared_at: datetime | None
    clear_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledgement_comment: str | None
    open: bool
    """Neither cleared nor acknowledged: someone still has to look at it."""


class AlertListRead(BaseModel):
    alerts: list[AlertRead]


class AlertAcknowledge(_Strict):
    comment: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


class DeviceEnrol(_Strict):
    device_id: Text
    kind: str

    _kind = field_validator("kind")(_known_device_kind)


class DeviceRevoke(_Strict):
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class DeviceRead(BaseModel):
    credential_id: uuid.UUID
    device_id: str
    kind: str
    kiosk_id: str
    site_id: str
    active: bool
    enrolled_at: datetime
    enrolled_by: str
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None


class DeviceEnrolledRead(DeviceRead):
    credential: str
    """Shown once: the device sends it as `X-Device-Credential`; only its hash is kept."""


class DeviceListRead(BaseModel):
    kiosk_id: str
    devices: list[DeviceRead]


class MetricRead(BaseModel):
    min: float | None
    max: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class CallQualitySummaryRead(BaseModel):
    session_id: str | None
    site_id: str | None
    since: datetime | None
    until: datetime | None
    reports: int
    first_at: datetime | None
    last_at: datetime | None
    rtt_ms: MetricRead
    jitter_ms: MetricRead
    loss_ratio: MetricRead
    bitrate_kbps: MetricRead
    levels: dict[str, int]


class KioskHealthRead(BaseModel):
    kiosk_id: str
    site_id: str
    departement: str
    site_category: str
    status: FleetStatus
    reported_status: str | None
    software_version: str | None
    network_quality: str | None
    rtt_ms: int | None
    last_heartbeat_at: datetime | None
    peripherals: list[PeripheralRead]
    open_alerts: list[AlertRead]
    alerts: list[AlertRead]
    heartbeats: list[HeartbeatRead]


class ComponentRead(BaseModel):
    loinc_code: str
    ucum_unit: str
    value: float


class MeasurementRead(BaseModel):
    measurement_id: str
    device_id: str
    loinc_code: str
    ucum_unit: str
    value: float | None
    components: list[ComponentRead]
    measured_at: datetime
    received_at: datetime
    abnormal: bool


class MeasurementHistoryRead(BaseModel):
    patient_ref: str
    measurements: list[MeasurementRead]
