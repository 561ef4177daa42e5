"""The measurement consumer's use case: write a batch, then evaluate threshold alerts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
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


def measurement_rows(batch: events_pb2.MeasurementBatchIngested) -> list[tuple[Any, ...]]:
    """The batch as stored rows (values in the repository's STORED_COLUMNS order), read
    straight from the protobuf in one pass: no row dict, no datetime per measurement;
    the database casts the measurement id and turns epoch microseconds into instants."""
    departement = batch.departement
    kind_names = contract.DEVICE_KIND_NAMES
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for m in batch.measurements:
        components = m.components
        measured, received = m.measured_at, m.received_at
        append(
            (
                m.measurement_id,
                m.device_id,
                kind_names.get(m.device_kind, ""),
                m.kiosk_id,
                m.site_id,
                departement,
                m.patient_ref,
                m.loinc_code,
                m.ucum_unit,
                None if components else m.value,
                _components_json(components) if components else None,
                measured.seconds * 1_000_000 + measured.nanos // 1000,
                received.seconds * 1_000_000 + received.nanos // 1000,
                m.abnormal,
                m.session_id or None,
            )
        )
    return rows


def _components_json(components: Iterable[events_pb2.MeasurementComponent]) -> str:
    return json.dumps(
        [
            {"loinc_code": c.loinc_code, "ucum_unit": c.ucum_unit, "value": c.value}
            for c in components
        ]
    )


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
    await MeasurementRepository(uow.session).store(measurement_rows(batch))
    await _evaluate_thresholds(uow, batch, rules)
    MEASUREMENTS_STORED.inc(len(batch.measurements))
    received_at = contract.instant(batch.ingested_at)
    INGEST_LATENCY.labels("stored").observe((datetime.now(UTC) - received_at).total_seconds())


_Check = tuple[int, events_pb2.Measurement, str, float]
"""A value a rule watches: its place among the batch's checks, measurement, unit, value."""
_Step = tuple[int, int, Transition, events_pb2.Measurement, str, float, ThresholdRule, str]
"""A transition to apply: instant (epoch µs), place, what, measurement, unit, value, rule,
alert key."""


async def _evaluate_thresholds(
    uow: UnitOfWork,
    batch: events_pb2.MeasurementBatchIngested,
    rules: Mapping[str, Sequence[ThresholdRule]],
) -> None:
    # The values each condition (patient_ref, LOINC code, rule index) watches, in batch
    # order; a measurement no rule watches costs one dict lookup.
    watched: dict[tuple[str, str, int], list[_Check]] = {}
    place = 0
    for m in batch.measurements:
        components = m.components
        if components:
            observed = [(c.loinc_code, c.ucum_unit, c.value) for c in components]
        elif m.loinc_code in rules:
            observed = [(m.loinc_code, m.ucum_unit, m.value)]
        else:
            continue
        patient_ref = m.patient_ref
        for code, unit, value in observed:
            for index in range(len(rules.get(code, ()))):
                place += 1
                checks = watched.get((patient_ref, code, index))
                if checks is None:
                    watched[(patient_ref, code, index)] = [(place, m, unit, value)]
                else:
                    checks.append((place, m, unit, value))
    if not watched:
        return
    keys = {
        condition: threshold_key(condition[0], rules[condition[1]][condition[2]])
        for condition in watched
    }
    open_keys = await AlertRepository(uow.session).open_keys(keys.values())
    # Hysteresis per condition, over its values in time order. A condition with no alert
    # open and no value past its threshold changes nothing: skipped (the usual case).
    steps: list[_Step] = []
    for condition, checks in watched.items():
        rule, key = rules[condition[1]][condition[2]], keys[condition]
        is_open = key in open_keys
        if not is_open and not any(rule.breached(value) for _, _, _, value in checks):
            continue
        timed = sorted(
            (contract.epoch_microseconds(m.measured_at), place, m, unit, value)
            for place, m, unit, value in checks
        )
        for at, place, m, unit, value in timed:
            transition = threshold_transition(rule, value, open_=is_open)
            if transition is not Transition.KEEP:
                is_open = transition is Transition.RAISE
                steps.append((at, place, transition, m, unit, value, rule, key))
    # Applied in time order across conditions, as the values were measured.
    steps.sort(key=_instant_and_place)
    for _, _, transition, m, unit, value, rule, key in steps:
        if transition is Transition.RAISE:
            await raise_alert(uow, _threshold_alert(batch, m, unit, value, rule, key))
        else:
            await clear_alert(uow, key, contract.instant(m.measured_at))


def _instant_and_place(step: _Step) -> tuple[int, int]:
    return step[0], step[1]


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
