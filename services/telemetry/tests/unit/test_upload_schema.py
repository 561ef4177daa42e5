"""The ingest fast path: the upload's TypedDicts, idempotency keys and stored rows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from maillage.telemetry.v1 import events_pb2
from maillage_telemetry.api.schemas import (
    ComponentCreate,
    ComponentItem,
    MeasurementCreate,
    MeasurementItem,
    canonical_uuid,
)
from maillage_telemetry.db.repositories import STORED_COLUMNS
from maillage_telemetry.domain.measurements import microseconds_since_epoch
from maillage_telemetry.use_cases import contract
from maillage_telemetry.use_cases.ingest import reading_key
from maillage_telemetry.use_cases.store import measurement_rows

ITEM: TypeAdapter[MeasurementItem] = TypeAdapter(MeasurementItem)


def _raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "measurement_id": str(uuid.uuid4()),
        "device_id": "oxi-1",
        "device_kind": "oximeter",
        "patient_ref": "pref-1",
        "loinc_code": "59408-5",
        "ucum_unit": "%",
        "value": 97,
        "measured_at": "2026-11-22T09:00:00+01:00",
    }
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("typed", "model"), [(MeasurementItem, MeasurementCreate), (ComponentItem, ComponentCreate)]
)
def test_the_upload_typeddicts_have_the_documented_models_fields(
    typed: type, model: type[Any]
) -> None:
    # MeasurementCreate documents the item in the OpenAPI schema; the route validates with
    # the TypedDict: the same fields, the same required ones.
    typed_schema = TypeAdapter(typed).json_schema()
    model_schema = model.model_json_schema()
    assert set(typed_schema["properties"]) == set(model_schema["properties"])
    assert set(typed_schema["required"]) == set(model_schema["required"])


@pytest.mark.parametrize(
    "changes",
    [
        {"measurement_id": "not-a-uuid"},
        {"device_kind": "toaster"},
        {"device_id": ""},
        {"value": "NaN"},
        {"measured_at": "2026-11-22T09:00:00"},
        {"unexpected": 1},
        {"components": [{"loinc_code": "8480-6", "ucum_unit": "mm[Hg]"}]},
    ],
)
def test_the_upload_item_refuses_what_the_model_refuses(changes: dict[str, Any]) -> None:
    raw = _raw(**changes)
    with pytest.raises(ValidationError):
        MeasurementCreate.model_validate(raw)
    with pytest.raises(ValidationError) as refused:
        ITEM.validate_python(raw)
    assert refused.value.errors()[0]["loc"][0] == next(iter(changes))


def test_measurement_ids_are_answered_in_canonical_form() -> None:
    canonical = str(uuid.uuid4())
    assert canonical_uuid(canonical) is canonical
    assert canonical_uuid(canonical.upper()) == canonical
    assert canonical_uuid(canonical.replace("-", "")) == canonical
    assert ITEM.validate_python(_raw(measurement_id=canonical.upper()))["measurement_id"] == (
        canonical
    )
    with pytest.raises(ValueError, match="UUID"):
        canonical_uuid("12345")


def test_the_same_instant_in_two_offsets_is_the_same_reading() -> None:
    utc = ITEM.validate_python(_raw(measured_at="2026-11-22T08:00:00.000123Z"))
    paris = ITEM.validate_python(_raw(measured_at="2026-11-22T09:00:00.000123+01:00"))
    assert reading_key(utc) == reading_key(paris)
    at = datetime(2026, 11, 22, 8, 0, 0, 123, tzinfo=UTC)
    assert reading_key(utc)[2] == microseconds_since_epoch(at)
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(0)))
    assert microseconds_since_epoch(before_epoch) == -1


def test_stored_rows_follow_the_repository_column_order() -> None:
    batch = events_pb2.MeasurementBatchIngested(departement="67")
    single = batch.measurements.add(
        measurement_id="m-1",
        device_id="oxi-1",
        device_kind=contract.device_kind("oximeter"),
        kiosk_id="k",
        site_id="s",
        patient_ref="pref-1",
        loinc_code="59408-5",
        ucum_unit="%",
        value=85.5,
        abnormal=True,
    )
    single.measured_at.seconds, single.measured_at.nanos = 1_800_000_000, 123_000
    single.received_at.seconds = 1_800_000_001
    panel = batch.measurements.add(loinc_code="85354-9", session_id="sess")
    panel.components.add(loinc_code="8480-6", ucum_unit="mm[Hg]", value=121)
    first, second = (dict(zip(STORED_COLUMNS, row, strict=True)) for row in measurement_rows(batch))
    assert first == {
        "measurement_id": "m-1",
        "device_id": "oxi-1",
        "device_kind": "oximeter",
        "kiosk_id": "k",
        "site_id": "s",
        "departement": "67",
        "patient_ref": "pref-1",
        "loinc_code": "59408-5",
        "ucum_unit": "%",
        "value": 85.5,
        "components": None,
        "measured_at": 1_800_000_000_000_123,
        "received_at": 1_800_000_001_000_000,
        "abnormal": True,
        "session_id": None,
    }
    assert second["value"] is None
    assert second["device_kind"] == ""
    assert second["session_id"] == "sess"
    assert json.loads(second["components"]) == [
        {"loinc_code": "8480-6", "ucum_unit": "mm[Hg]", "value": 121}
    ]


def test_timestamps_round_trip_through_epoch_microseconds() -> None:
    at = datetime.now(UTC)
    stamp = contract.timestamp(at)
    assert contract.epoch_microseconds(stamp) == microseconds_since_epoch(at)
