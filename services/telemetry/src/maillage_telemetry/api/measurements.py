"""Measurement upload (batch, per-item answers), history and FHIR export."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf.message import DecodeError
from pydantic import TypeAdapter, ValidationError

from maillage.telemetry.v1 import events_pb2
from maillage_common.auth import Principal, Role, requires
from maillage_common.http.dependencies import RuntimeDep, UnitOfWorkDep
from maillage_common.http.problems import Problem, field_error
from maillage_telemetry.api.access import device_credential, site_scope, uploader_of
from maillage_telemetry.api.schemas import (
    ComponentRead,
    MeasurementBatchCreate,
    MeasurementBatchRead,
    MeasurementHistoryRead,
    MeasurementRead,
    UploadItems,
)
from maillage_telemetry.api.schemas import MeasurementItem as UploadItem
from maillage_telemetry.domain.fhir import StoredMeasurement, searchset
from maillage_telemetry.domain.measurements import Rejection, TimeWindow
from maillage_telemetry.settings import TelemetrySettings
from maillage_telemetry.use_cases import contract
from maillage_telemetry.use_cases.common import KioskNotAdmittedError, Uploader
from maillage_telemetry.use_cases.devices import DeviceCredential, DeviceNotAdmittedError
from maillage_telemetry.use_cases.ingest import (
    IngestResult,
    MeasurementItem,
    Outcome,
    ParsedItem,
    ingest_measurements,
    observe_accepted,
)
from maillage_telemetry.use_cases.queries import measurement_history

router = APIRouter(tags=["measurements"])
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Items validate to plain dicts (TypedDicts, see api/schemas.py), not models.
_ITEM: TypeAdapter[MeasurementItem] = TypeAdapter(UploadItem)
_UPLOAD: TypeAdapter[UploadItems] = TypeAdapter(UploadItems)
PROTOBUF = "application/x-protobuf"
# Generous bound on one item's encoded size: refuses absurd bodies before parsing them.
_MAX_ITEM_BYTES = 4096
FHIR_JSON = "application/fhir+json"


def _settings(runtime: RuntimeDep) -> TelemetrySettings:
    settings = runtime.settings
    assert isinstance(settings, TelemetrySettings)
    return settings


def _parse_one(raw: Any) -> tuple[ParsedItem, str]:
    loinc_code = str(raw.get("loinc_code", ""))[:32] if isinstance(raw, dict) else ""
    try:
        item = _ITEM.validate_python(raw)
    except ValidationError as error:
        return [
            Rejection(".".join(str(p) for p in e["loc"]) or "item", e["msg"])
            for e in error.errors()
        ], loinc_code
    return item, item["loinc_code"]


def _parse_json(raw: bytes) -> tuple[str | None, list[tuple[ParsedItem, str]]]:
    """The whole upload in one pass of pydantic-core when every item is valid; otherwise
    each item on its own, so a bad item never sinks the good ones."""
    try:
        upload = _UPLOAD.validate_json(raw)
        return upload.get("kiosk_id"), [(item, item["loinc_code"]) for item in upload["items"]]
    except ValidationError:
        pass
    try:
        envelope = MeasurementBatchCreate.model_validate_json(raw)
    except ValidationError as error:
        raise _invalid(error) from error
    return envelope.kiosk_id, [_parse_one(item) for item in envelope.items]


def _parse_protobuf(raw: bytes) -> tuple[str | None, list[tuple[ParsedItem, str]]]:
    try:
        upload = events_pb2.MeasurementUpload.FromString(raw)
    except DecodeError as error:
        raise Problem(422, "Invalid request", "the body is not a MeasurementUpload") from error
    items = [_from_protobuf(m) for m in upload.measurements]
    return upload.kiosk_id or None, [_parse_one(item) for item in items]


def _from_protobuf(m: events_pb2.Measurement) -> dict[str, Any]:
    """The JSON shape of a protobuf measurement, to validate both the same way."""
    item: dict[str, Any] = {
        "measurement_id": m.measurement_id,
        "device_id": m.device_id,
        "device_kind": contract.device_kind_name(m.device_kind) or None,
        "patient_ref": m.patient_ref,
        "loinc_code": m.loinc_code,
        "ucum_unit": m.ucum_unit,
        "value": None if m.components else m.value,
        "components": [
            {"loinc_code": c.loinc_code, "ucum_unit": c.ucum_unit, "value": c.value}
            for c in m.components
        ],
        "session_id": m.session_id or None,
    }
    if m.HasField("measured_at"):
        item["measured_at"] = contract.instant(m.measured_at)
    return item


def _invalid(error: ValidationError) -> Problem:
    errors = [
        field_error(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in error.errors()
    ]
    return Problem(422, "Invalid request", "the upload is malformed", errors=errors)


def _read(result: IngestResult) -> Response:
    # Plain dicts through the C JSON encoder (the shape of MeasurementBatchRead, which
    # documents it): on a 1000-item upload, building response models item by item costs
    # as much as validating the items.
    body = {
        "batch_id": str(result.batch_id),
        "accepted": result.count(Outcome.ACCEPTED),
        "duplicate": result.count(Outcome.DUPLICATE),
        "rejected": result.count(Outcome.REJECTED),
        "items": [
            {
                "index": item.index,
                "measurement_id": item.measurement_id,
                "outcome": item.outcome,  # a StrEnum: encoded as its value
                "abnormal": item.abnormal,
                "errors": [{"field": e.field, "reason": e.reason} for e in item.errors]
                if item.errors
                else [],
            }
            for item in result.items
        ],
    }
    return Response(_ENCODER.encode(body), media_type="application/json")


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/MeasurementBatchCreate"}},
        PROTOBUF: {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "maillage.telemetry.v1.MeasurementUpload",
            }
        },
    },
}


async def _parsed_upload(
    request: Request, settings: TelemetrySettings
) -> tuple[str | None, list[tuple[ParsedItem, str]]]:
    raw = await request.body()
    if len(raw) > settings.max_batch_items * _MAX_ITEM_BYTES:
        raise _too_large(settings.max_batch_items)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == PROTOBUF:
        kiosk_id, items = _parse_protobuf(raw)
    elif media_type in {"application/json", ""}:
        kiosk_id, items = _parse_json(raw)
    else:
        raise Problem(415, "Unsupported Media Type", f"send application/json or {PROTOBUF}")
    if not items:
        raise Problem(422, "Invalid request", errors=[field_error("items", "is empty")])
    if len(items) > settings.max_batch_items:
        raise _too_large(settings.max_batch_items)
    return kiosk_id, items


async def _ingest(
    uow: UnitOfWorkDep,
    settings: TelemetrySettings,
    source: Uploader | DeviceCredential,
    items: list[tuple[ParsedItem, str]],
    started: float,
) -> Response:
    window = TimeWindow(datetime.now(UTC), settings.retention, settings.future_tolerance)
    try:
        result = await ingest_measurements(uow, source, items, window)
    except KioskNotAdmittedError as error:
        raise Problem(403, "Forbidden", str(error)) from error
    except DeviceNotAdmittedError as error:
        raise Problem(
            401, "Unauthorized", str(error), headers={"WWW-Authenticate": "DeviceCredential"}
        ) from error
    observe_accepted(time.perf_counter() - started)
    return _read(result)


@router.post(
    "/measurements/batch",
    response_model=MeasurementBatchRead,
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_measurements(
    request: Request,
    caller: Annotated[Principal, requires(Role.KIOSK, Role.SERVICE)],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
) -> Response:
    """Upload up to N measurements (JSON `MeasurementBatchCreate` or protobuf
    `MeasurementUpload`); each item is answered accepted, duplicate or rejected. Items of a
    device that is not enrolled (and active) on the kiosk are rejected."""
    started = time.perf_counter()
    settings = _settings(runtime)
    kiosk_id, items = await _parsed_upload(request, settings)
    return await _ingest(uow, settings, uploader_of(caller, kiosk_id), items, started)


@router.post(
    "/measurements/device-batch",
    response_model=MeasurementBatchRead,
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_device_measurements(
    request: Request,
    credential: Annotated[str, device_credential()],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
) -> Response:
    """A connected device uploads its own measurements with the credential it received at
    enrolment (`X-Device-Credential`); the kiosk is the one it is enrolled on, and items
    naming another device are rejected. A revoked credential gets 401."""
    started = time.perf_counter()
    settings = _settings(runtime)
    _, items = await _parsed_upload(request, settings)
    return await _ingest(uow, settings, DeviceCredential(credential), items, started)


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Batch too large",
        f"at most {limit} items per upload",
        errors=[field_error("items", f"has more than {limit} items")],
    )


async def _history(
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    caller: Principal,
    patient_ref: str,
    loinc_code: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
) -> list[StoredMeasurement]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Problem(
                422, "Invalid request", errors=[field_error(name, "must carry a time zone")]
            )
    settings = _settings(runtime)
    return await measurement_history(
        uow,
        patient_ref,
        site_scope=site_scope(caller),
        loinc_code=loinc_code,
        since=since,
        until=until,
        limit=min(limit or settings.history_limit, settings.history_limit),
    )


@router.get("/patients/{patient_ref}/measurements", response_model=MeasurementHistoryRead)
async def patient_measurements(
    patient_ref: str,
    caller: Annotated[Principal, requires(Role.NURSE, Role.RESPONDER)],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    loinc_code: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> MeasurementHistoryRead:
    """A patient reference's measurements, newest first (a nurse sees her site's only)."""
    found = await _history(uow, runtime, caller, patient_ref, loinc_code, since, until, limit)
    return MeasurementHistoryRead(
        patient_ref=patient_ref,
        measurements=[
            MeasurementRead(
                measurement_id=m.measurement_id,
                device_id=m.device_id,
                loinc_code=m.loinc_code,
                ucum_unit=m.ucum_unit,
                value=m.value,
                components=[
                    ComponentRead(loinc_code=c.loinc_code, ucum_unit=c.ucum_unit, value=c.value)
                    for c in m.components
                ],
                measured_at=m.measured_at,
                received_at=m.received_at,
                abnormal=m.abnormal,
            )
            for m in found
        ],
    )


@router.get(
    "/patients/{patient_ref}/observations",
    response_class=JSONResponse,
    responses={200: {"content": {FHIR_JSON: {}}, "description": "FHIR R4 searchset Bundle"}},
)
async def patient_observations(
    patient_ref: str,
    caller: Annotated[Principal, requires(Role.NURSE, Role.RESPONDER)],
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    loinc_code: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> JSONResponse:
    """The same measurements as a FHIR R4 Bundle of Observation resources."""
    found = await _history(uow, runtime, caller, patient_ref, loinc_code, since, until, limit)
    return JSONResponse(searchset(found), media_type=FHIR_JSON)
