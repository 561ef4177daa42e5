"""The measurement consumer's use case: write a batch, then evaluate threshold alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from maillage.telemetry.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_telemetry.db.repositories import AlertRepository, MeasurementRepository
from maillage_telemetry.domain.alerts import (
    AlertKind,
    ThresholdRule,
    Transition,
    rules_for,
    threshold_key,
    threshold_transition,
)
from maillage_telemetry.metrics import INGEST_LATENCY, MEASUREMENTS_STORED
from maillage_telemetry.use_cases import contract
from maillage_telemetry.use_cases.alerting import clear_alert, new_alert, raise_alert


def measurement_row(m: events_pb2.Measurement, departement: str) -> dict[str, Any]:
    components = [
        {"loinc_code": c.loinc_code, "ucum_unit": c.ucum_unit, "value": c.value}
        for c in m.components
    ]
    return {
        # The database casts the text to uuid: cheaper than uuid.UUID() per row here.
        "measurement_id": m.measurement_id,
        "device_id": m.device_id,
        "device_kind": contract.device_kind_name(m.device_kind),
        "kiosk_id": m.kiosk_id,
        "site_id": m.site_id,
        "departement": departement,
        "patient_ref": m.patient_ref,
        "loinc_code": m.loinc_code,
        "ucum_unit": m.ucum_unit,
        "value": None if components else m.value,
        "components": components or None,
        "measured_at": contract.instant(m.measured_at),
        "received_at": contract.instant(m.received_at),
        "abnormal": m.abnormal,
        "session_id": m.session_id or None,
    }


async def store_measurement_batch(
    uow: UnitOfWork, batch: events_pb2.MeasurementBatchIngested, rules: Sequence[ThresholdRule]
) -> None:
    """Store every measurement of the batch (idempotently) and raise or clear threshold
    alerts. Runs inside the consumer's transaction; the consumer commits."""
    rows = [measurement_row(m, batch.departement) for m in batch.measurements]
    await MeasurementRepository(uow.session).store(rows)
    await _evaluate_thresholds(uow, batch, rules)
    MEASUREMENTS_STORED.inc(len(rows))
    if batch.measurements:
        received_at = contract.instant(batch.ingested_at)
        INGEST_LATENCY.labels("stored").observe((datetime.now(UTC) - received_at).total_seconds())


async def _evaluate_thresholds(
    uow: UnitOfWork, batch: events_pb2.MeasurementBatchIngested, rules: Sequence[ThresholdRule]
) -> None:
    checks: list[tuple[events_pb2.Measurement, str, float, ThresholdRule]] = []
    for m in sorted(batch.measurements, key=lambda m: m.measured_at.ToNanoseconds()):
        values = {c.loinc_code: (c.ucum_unit, c.value) for c in m.components} or {
            m.loinc_code: (m.ucum_unit, m.value)
        }
        for code, (unit, value) in values.items():
            checks.extend((m, unit, value, rule) for rule in rules_for(rules, code))
    if not checks:
        return
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
