"""Batch ingest of measurements: answer per item, never lose a good item to a bad one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from google.protobuf.timestamp_pb2 import Timestamp

from maillage.telemetry.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import (
    ConsentRepository,
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

NO_CONSENT = "no consent is recorded for this patient_ref"
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
    uploader: Uploader,
    items: Sequence[tuple[ParsedItem, str]],
    window: TimeWindow,
) -> IngestResult:
    """Validate each item, refuse those without consent, answer duplicates, and record the
    accepted ones as one MeasurementBatchIngested event in the same transaction as their
    idempotency keys. `items` pairs each parsed item with its raw LOINC code (for metrics)."""
    results, candidates = _assess_all(items, window)
    batch_id = uuid.uuid4()
    async with uow:
        placement = await DirectoryRepository(uow.session).placement(
            uploader.kiosk_id, uploader.site_id
        )
        admit(placement)
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
        elif item.key in seen:
            # The same reading twice in one upload: the first one counts.
            result.outcome = Outcome.DUPLICATE
        else:
            seen.add(item.key)
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
    received_at = contract.timestamp(now)
    return events_pb2.MeasurementBatchIngested(
        batch_id=str(batch_id),
        kiosk_id=uploader.kiosk_id,
        site_id=uploader.site_id,
        departement=departement,
        ingested_at=received_at,
        measurements=[
            _measurement(item, result.abnormal, uploader, received_at) for item, result in accepted
        ],
    )


def _measurement(
    item: MeasurementItem, abnormal: bool, uploader: Uploader, received_at: Timestamp
) -> events_pb2.Measurement:
    reading = item.reading
    message = events_pb2.Measurement(
        measurement_id=str(item.measurement_id),
        device_id=item.device_id,
        device_kind=contract.device_kind(item.device_kind),
        kiosk_id=uploader.kiosk_id,
        site_id=uploader.site_id,
        patient_ref=item.patient_ref,
        loinc_code=reading.loinc_code,
        ucum_unit=reading.ucum_unit,
        value=reading.value or 0.0,
        components=[
            events_pb2.MeasurementComponent(
                loinc_code=c.loinc_code, ucum_unit=c.ucum_unit, value=c.value
            )
            for c in reading.components
        ],
        measured_at=contract.timestamp(reading.measured_at),
        abnormal=abnormal,
        session_id=item.session_id or "",
    )
    message.received_at.CopyFrom(received_at)
    return message


def _count(results: Sequence[ItemResult]) -> None:
    for result in results:
        # Only known codes become label values: a client must not grow the label set.
        code = result.loinc_code if is_known(result.loinc_code) else "other"
        MEASUREMENTS_INGESTED.labels(code, result.outcome.value).inc()


def observe_accepted(seconds: float) -> None:
    INGEST_LATENCY.labels("accepted").observe(seconds)
