"""Batch ingest of measurements: answer per item, never lose a good item to a bad one."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NotRequired, TypedDict

from maillage.telemetry.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import (
    MeasurementRepository,
    ReadingKey,
    UploadRepository,
)
from maillage_telemetry.domain.measurements import (
    Component,
    Rejection,
    TimeWindow,
    assess_values,
    is_known,
    microseconds_since_epoch,
)
from maillage_telemetry.metrics import INGEST_LATENCY, MEASUREMENTS_INGESTED
from maillage_telemetry.use_cases import contract
from maillage_telemetry.use_cases.common import Uploader, admit
from maillage_telemetry.use_cases.devices import DeviceCredential, device_uploader

NO_CONSENT = "no consent is recorded for this patient_ref"
NOT_ENROLLED = "is not an active device of this kiosk (enrol it; a revoked device stays refused)"
NOT_THIS_DEVICE = "is not the device of the credential that sent it"
EVENT_CHUNK = 500


class MeasurementComponent(TypedDict):
    loinc_code: str
    ucum_unit: str
    value: float


class MeasurementItem(TypedDict):
    """One parsed item of an upload: the validated JSON item as it came (a plain dict
    from pydantic-core, read once here; no model or dataclass per item)."""

    measurement_id: str  # a UUID in canonical form
    device_id: str
    device_kind: NotRequired[str | None]
    patient_ref: str
    loinc_code: str
    ucum_unit: str
    value: NotRequired[float | None]
    components: NotRequired[list[MeasurementComponent]]
    measured_at: datetime
    session_id: NotRequired[str | None]


def reading_key(item: MeasurementItem) -> ReadingKey:
    """(device_id, loinc_code, measured_at as exact microseconds since the epoch): hashed
    and compared as an int, bound to PostgreSQL as int8 (no aware datetime to convert)."""
    return (
        item["device_id"],
        item["loinc_code"],
        microseconds_since_epoch(item["measured_at"]),
    )


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(slots=True)
class ItemResult:
    index: int
    measurement_id: str | None
    loinc_code: str
    outcome: Outcome
    abnormal: bool = False
    errors: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IngestResult:
    batch_id: uuid.UUID
    items: list[ItemResult]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for item in self.items if item.outcome is outcome)


ParsedItem = MeasurementItem | list[Rejection]
"""An item that parsed, or the reasons it did not (with its LOINC code unknown)."""
Candidate = tuple[MeasurementItem, ItemResult, ReadingKey]
"""An item still in the running, its answer (to amend) and its idempotency key."""


async def ingest_measurements(
    uow: UnitOfWork,
    source: Uploader | DeviceCredential,
    items: Sequence[tuple[ParsedItem, str]],
    window: TimeWindow,
) -> IngestResult:
    """Validate each item, refuse those from a device not active on the kiosk or without
    consent, answer duplicates, and record the accepted ones as one MeasurementBatchIngested
    event in the same transaction as their idempotency keys. `items` pairs each parsed item
    with its raw LOINC code (for metrics)."""
    results, candidates = _assess_all(items, window)
    batch_id = uuid.uuid4()
    async with uow:
        uploader = (
            await device_uploader(uow.session, source.text)
            if isinstance(source, DeviceCredential)
            else source
        )
        admission = await UploadRepository(uow.session).admission(
            uploader.kiosk_id,
            uploader.site_id,
            {item["device_id"] for item, _, _ in candidates},
            {item["patient_ref"] for item, _, _ in candidates},
        )
        placement = admission.placement
        admit(placement)
        # A service names only the kiosk: its site comes from the directory read model.
        uploader = Uploader(uploader.kiosk_id, placement.site_id, uploader.device_id)
        candidates = _from_active_devices(uploader, admission.active_devices, candidates)
        consented = admission.consented
        consented_items: list[Candidate] = []
        for candidate in candidates:
            if candidate[0]["patient_ref"] in consented:
                consented_items.append(candidate)
            else:
                _reject(candidate[1], Rejection("patient_ref", NO_CONSENT))
        fresh = await MeasurementRepository(uow.session).claim(
            [key for _, _, key in consented_items], window.now
        )
        for _, result, _ in consented_items:
            result.outcome = Outcome.DUPLICATE
        fresh.sort()  # upload order
        accepted = [consented_items[position] for position in fresh]
        for _, result, _ in accepted:
            result.outcome = Outcome.ACCEPTED
        # Chunked so that one event stays well under the broker's message size limit
        # whatever the upload size (items have bounded fields).
        for start in range(0, len(accepted), EVENT_CHUNK):
            chunk = accepted[start : start + EVENT_CHUNK]
            event = _batch_event(batch_id, uploader, placement.departement, chunk, window.now)
            await uow.record(event, subject=uploader.kiosk_id)
        await uow.commit()
    _count(results)
    return IngestResult(batch_id, results)


def _from_active_devices(
    uploader: Uploader, active: frozenset[str], candidates: list[Candidate]
) -> list[Candidate]:
    """Keep the items of devices enrolled and not revoked on the uploading kiosk (and only
    the credential's own device when a device uploads); reject the others per item."""
    kept: list[Candidate] = []
    only = uploader.device_id
    for candidate in candidates:
        item, result, _ = candidate
        device_id = item["device_id"]
        if only is not None and device_id != only:
            _reject(result, Rejection("device_id", NOT_THIS_DEVICE))
        elif device_id not in active:
            _reject(result, Rejection("device_id", NOT_ENROLLED))
        else:
            kept.append(candidate)
    return kept


def _assess_all(
    items: Sequence[tuple[ParsedItem, str]], window: TimeWindow
) -> tuple[list[ItemResult], list[Candidate]]:
    results: list[ItemResult] = []
    candidates: list[Candidate] = []
    seen: set[ReadingKey] = set()
    for index, (item, loinc_code) in enumerate(items):
        if isinstance(item, list):
            results.append(ItemResult(index, None, loinc_code, Outcome.REJECTED, errors=item))
            continue
        result = ItemResult(index, item["measurement_id"], loinc_code, Outcome.ACCEPTED)
        results.append(result)
        key = reading_key(item)
        components = item.get("components")
        verdict = assess_values(
            item["loinc_code"],
            item["ucum_unit"],
            key[2],
            item.get("value"),
            [Component(c["loinc_code"], c["ucum_unit"], c["value"]) for c in components]
            if components
            else (),
            window,
        )
        if isinstance(verdict, Rejection):
            _reject(result, verdict)
            continue
        if key in seen:
            # The same reading twice in one upload: the first one counts.
            result.outcome = Outcome.DUPLICATE
        else:
            seen.add(key)
            result.abnormal = verdict.abnormal
            candidates.append((item, result, key))
    return results, candidates


def _reject(result: ItemResult, reason: Rejection) -> None:
    result.outcome = Outcome.REJECTED
    result.abnormal = False
    result.errors.append(reason)


def _batch_event(
    batch_id: uuid.UUID,
    uploader: Uploader,
    departement: str,
    accepted: Sequence[Candidate],
    now: datetime,
) -> events_pb2.MeasurementBatchIngested:
    event = events_pb2.MeasurementBatchIngested(
        batch_id=str(batch_id),
        kiosk_id=uploader.kiosk_id,
        site_id=uploader.site_id,
        departement=departement,
    )
    contract.set_timestamp(event.ingested_at, now)
    # Measurements are added to the batch in place (no message built then copied in), and
    # what every item shares is computed once: this loop runs once per accepted item.
    received = event.ingested_at
    add = event.measurements.add
    kiosk_id, site_id = uploader.kiosk_id, uploader.site_id
    device_kind = contract.device_kind
    for item, result, key in accepted:
        components = item.get("components")
        message = add(
            measurement_id=result.measurement_id,
            device_id=item["device_id"],
            device_kind=device_kind(item.get("device_kind")),
            kiosk_id=kiosk_id,
            site_id=site_id,
            patient_ref=item["patient_ref"],
            loinc_code=item["loinc_code"],
            ucum_unit=item["ucum_unit"],
            value=item.get("value") or 0.0,
            abnormal=result.abnormal,
            session_id=item.get("session_id") or "",
        )
        if components:
            for c in components:
                message.components.add(
                    loinc_code=c["loinc_code"], ucum_unit=c["ucum_unit"], value=c["value"]
                )
        stamp = message.measured_at
        stamp.seconds, microseconds = divmod(key[2], 1_000_000)
        stamp.nanos = microseconds * 1000
        stamp = message.received_at
        stamp.seconds = received.seconds
        stamp.nanos = received.nanos
    return event


def _count(results: Sequence[ItemResult]) -> None:
    # One increment per (code, outcome) of the upload, not per item.
    tally = Counter((result.loinc_code, result.outcome) for result in results)
    for (loinc_code, outcome), count in tally.items():
        # Only known codes become label values: a client must not grow the label set.
        code = loinc_code if is_known(loinc_code) else "other"
        MEASUREMENTS_INGESTED.labels(code, outcome).inc(count)


def observe_accepted(seconds: float) -> None:
    INGEST_LATENCY.labels("accepted").observe(seconds)
