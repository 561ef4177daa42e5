"""Batch ingest of measurements: answer per item, never lose a good item to a bad one."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from maillage.telemetry.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import (
    ConsentRepository,
    DeviceRepository,
    DirectoryRepository,
    MeasurementRepository,
    ReadingKey,
)
from maillage_telemetry.domain.measurements import (
    Acceptable,
    Reading,
    Rejection,
    TimeWindow,
    assess,
    is_known,
)
from maillage_telemetry.metrics import INGEST_LATENCY, MEASUREMENTS_INGESTED
from maillage_telemetry.use_cases import contract
from maillage_telemetry.use_cases.common import Uploader, admit
from maillage_telemetry.use_cases.devices import DeviceCredential, device_uploader

NO_CONSENT = "no consent is recorded for this patient_ref"
NOT_ENROLLED = "is not an active device of this kiosk (enrol it; a revoked device stays refused)"
NOT_THIS_DEVICE = "is not the device of the credential that sent it"
EVENT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class MeasurementItem:
    """One parsed item of an upload."""

    measurement_id: uuid.UUID
    device_id: str
    device_kind: str | None
    patient_ref: str
    reading: Reading
    session_id: str | None = None

    @property
    def key(self) -> ReadingKey:
        return (self.device_id, self.reading.loinc_code, self.reading.measured_at)


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
        placement = await DirectoryRepository(uow.session).placement(
            uploader.kiosk_id, uploader.site_id
        )
        admit(placement)
        # A service names only the kiosk: its site comes from the directory read model.
        uploader = Uploader(uploader.kiosk_id, placement.site_id, uploader.device_id)
        candidates = await _from_active_devices(uow, uploader, candidates)
        consented = await ConsentRepository(uow.session).granted_among(
            item.patient_ref for item, _ in candidates
        )
        consented_items = [c for c in candidates if c[0].patient_ref in consented]
        for item, result in candidates:
            if item.patient_ref not in consented:
                _reject(result, Rejection("patient_ref", NO_CONSENT))
        fresh = await MeasurementRepository(uow.session).claim(
            [item.key for item, _ in consented_items], window.now
        )
        accepted: list[tuple[MeasurementItem, ItemResult]] = []
        for item, result in consented_items:
            if item.key in fresh:
                accepted.append((item, result))
            else:
                result.outcome = Outcome.DUPLICATE
        # Chunked so that one event stays well under the broker's message size limit
        # whatever the upload size (items have bounded fields).
        for start in range(0, len(accepted), EVENT_CHUNK):
            chunk = accepted[start : start + EVENT_CHUNK]
            event = _batch_event(batch_id, uploader, placement.departement, chunk, window.now)
            await uow.record(event, subject=uploader.kiosk_id)
        await uow.commit()
    _count(results)
    return IngestResult(batch_id, results)


async def _from_active_devices(
    uow: UnitOfWork, uploader: Uploader, candidates: list[tuple[MeasurementItem, ItemResult]]
) -> list[tuple[MeasurementItem, ItemResult]]:
    """Keep the items of devices enrolled and not revoked on the uploading kiosk (and only
    the credential's own device when a device uploads); reject the others per item."""
    active = await DeviceRepository(uow.session).active_among(
        uploader.kiosk_id, {item.device_id for item, _ in candidates}
    )
    kept: list[tuple[MeasurementItem, ItemResult]] = []
    for item, result in candidates:
        if uploader.device_id is not None and item.device_id != uploader.device_id:
            _reject(result, Rejection("device_id", NOT_THIS_DEVICE))
        elif item.device_id not in active:
            _reject(result, Rejection("device_id", NOT_ENROLLED))
        else:
            kept.append((item, result))
    return kept


def _assess_all(
    items: Sequence[tuple[ParsedItem, str]], window: TimeWindow
) -> tuple[list[ItemResult], list[tuple[MeasurementItem, ItemResult]]]:
    results: list[ItemResult] = []
    candidates: list[tuple[MeasurementItem, ItemResult]] = []
    seen: set[ReadingKey] = set()
    for index, (item, loinc_code) in enumerate(items):
        if isinstance(item, list):
            results.append(ItemResult(index, None, loinc_code, Outcome.REJECTED, errors=item))
            continue
        result = ItemResult(index, str(item.measurement_id), loinc_code, Outcome.ACCEPTED)
        results.append(result)
        verdict = assess(item.reading, window)
        if isinstance(verdict, Rejection):
            _reject(result, verdict)
            continue
        key = item.key
        if key in seen:
            # The same reading twice in one upload: the first one counts.
            result.outcome = Outcome.DUPLICATE
        else:
            seen.add(key)
            result.abnormal = isinstance(verdict, Acceptable) and verdict.abnormal
            candidates.append((item, result))
    return results, candidates


def _reject(result: ItemResult, reason: Rejection) -> None:
    result.outcome = Outcome.REJECTED
    result.abnormal = False
    result.errors.append(reason)


def _batch_event(
    batch_id: uuid.UUID,
    uploader: Uploader,
    departement: str,
    accepted: Sequence[tuple[MeasurementItem, ItemResult]],
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
    for item, result in accepted:
        reading = item.reading
        message = add(
            measurement_id=str(item.measurement_id),
            device_id=item.device_id,
            device_kind=contract.device_kind(item.device_kind),
            kiosk_id=kiosk_id,
            site_id=site_id,
            patient_ref=item.patient_ref,
            loinc_code=reading.loinc_code,
            ucum_unit=reading.ucum_unit,
            value=reading.value or 0.0,
            abnormal=result.abnormal,
            session_id=item.session_id or "",
        )
        for c in reading.components:
            message.components.add(loinc_code=c.loinc_code, ucum_unit=c.ucum_unit, value=c.value)
        contract.set_timestamp(message.measured_at, reading.measured_at)
        message.received_at.seconds = received.seconds
        message.received_at.nanos = received.nanos
    return event


def _count(results: Sequence[ItemResult]) -> None:
    # One increment per (code, outcome) of the upload, not per item.
    tally = Counter((result.loinc_code, result.outcome.value) for result in results)
    for (loinc_code, outcome), count in tally.items():
        # Only known codes become label values: a client must not grow the label set.
        code = loinc_code if is_known(loinc_code) else "other"
        MEASUREMENTS_INGESTED.labels(code, outcome).inc(count)


def observe_accepted(seconds: float) -> None:
    INGEST_LATENCY.labels("accepted").observe(seconds)
