"""The measurement consumer's use case: write a batch, then evaluate threshold alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from maillage.telemetry.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import AlertRepository, MeasurementRepository
from maillage_telemetry.domain.alerts import (
    AlertKind,
    ThresholdRule,
    Transition,
    threshold_key,
    threshold_transition,
)
from maillage_telemetry.metrics import INGEST_LATENCY, MEASUREMENTS_STORED
from maillage_telemetry.use_cases import contract
from maillage_telemetry.use_cases.alerting import clear_alert, new_alert, raise_alert


def measurement_columns(batch: events_pb2.MeasurementBatchIngested) -> dict[str, list[Any]]:
    """The batch as one list per stored column (the shape of the multi-row insert), read
    straight from the protobuf: no row dict, no datetime per measurement."""
    ms = batch.measurements
    components = [
        [{"loinc_code": c.loinc_code, "ucum_unit": c.ucum_unit, "value": c.value} for c in cs]
        or None
        for cs in (m.components for m in ms)
    ]
    return {
        # The database casts the text to uuid: cheaper than uuid.UUID() per row here.
        "measurement_id": [m.measurement_id for m in ms],
        "device_id": [m.device_id for m in ms],
        "device_kind": [contract.device_kind_name(m.device_kind) for m in ms],
        "kiosk_id": [m.kiosk_id for m in ms],
        "site_id": [m.site_id for m in ms],
        "departement": [batch.departement] * len(ms),
        "patient_ref": [m.patient_ref for m in ms],
        "loinc_code": [m.loinc_code for m in ms],
        "ucum_unit": [m.ucum_unit for m in ms],
        "value": [None if c else m.value for m, c in zip(ms, components, strict=True)],
        "components": components,
        "measured_at": [contract.epoch_microseconds(m.measured_at) for m in ms],
        "received_at": [contract.epoch_microseconds(m.received_at) for m in ms],
        "abnormal": [m.abnormal for m in ms],
        "session_id": [m.session_id or None for m in ms],
    }


async def store_measurement_batch(
    uow: UnitOfWork,
    batch: events_pb2.MeasurementBatchIngested,
    rules: Mapping[str, Sequence[ThresholdRule]],
) -> None:
    """Store every measurement of the batch (idempotently) and raise or clear threshold
    alerts (`rules` by LOINC code). Runs inside the consumer's transaction; the consumer
    commits."""
    if not batch.measurements:
        return
    await MeasurementRepository(uow.session).store(measurement_columns(batch))
    await _evaluate_thresholds(uow, batch, rules)
    MEASUREMENTS_STORED.inc(len(batch.measurements))
    received_at = contract.instant(batch.ingested_at)
    INGEST_LATENCY.labels("stored").observe((datetime.now(UTC) - received_at).total_seconds())


async def _evaluate_thresholds(
    uow: UnitOfWork,
    batch: events_pb2.MeasurementBatchIngested,
    rules: Mapping[str, Sequence[ThresholdRule]],
) -> None:
    checks: list[tuple[events_pb2.Measurement, str, float, ThresholdRule]] = []
    for m in batch.measurements:
        observed = [(c.loinc_code, c.ucum_unit, c.value) for c in m.components] or [
            (m.loinc_code, m.ucum_unit, m.value)
        ]
        for code, unit, value in observed:
            checks.extend((m, unit, value, rule) for rule in rules.get(code, ()))
    if not checks:
        return
    # In time order, so that hysteresis sees the values as they were measured.
    checks.sort(key=lambda check: contract.epoch_microseconds(check[0].measured_at))
    open_keys = await AlertRepository(uow.session).open_keys(
        threshold_key(m.patient_ref, rule) for m, _, _, rule in checks
    )
    for m, unit, value, rule in checks:
        key = threshold_key(m.patient_ref, rule)
        transition = threshold_transition(rule, value, open_=key in open_keys)
        if transition is Transition.RAISE:
            await raise_alert(uow, _threshold_alert(batch, m, unit, value, rule, key))
            open_keys.add(key)
        elif transition is Transition.CLEAR:
            await clear_alert(uow, key, contract.instant(m.measured_at))
            open_keys.discard(key)


def _threshold_alert(
    batch: events_pb2.MeasurementBatchIngested,
    m: events_pb2.Measurement,
    unit: str,
    value: float,
    rule: ThresholdRule,
    key: str,
) -> dict[str, Any]:
    return new_alert(
        dedup_key=key,
        kind=AlertKind.MEASUREMENT_THRESHOLD,
        severity=rule.severity,
        kiosk_id=m.kiosk_id,
        site_id=m.site_id,
        departement=batch.departement,
        raised_at=contract.instant(m.measured_at),
        device_id=m.device_id,
        device_kind=contract.device_kind_name(m.device_kind),
        patient_ref=m.patient_ref,
        measurement_id=m.measurement_id,
        loinc_code=rule.loinc_code,
        ucum_unit=unit,
        threshold=rule.raise_at,
        value=value,
    )
