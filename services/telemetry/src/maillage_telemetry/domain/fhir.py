"""FHIR R4 Observation export of stored measurements (plain JSON-ready dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maillage_telemetry.domain.measurements import Component, display_name

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PATIENT_REF_SYSTEM = "urn:maillage:patient-ref"
DEVICE_SYSTEM = "urn:maillage:device-id"
_LABORATORY = frozenset({"2339-0", "15074-8"})


@dataclass(frozen=True, slots=True)
class StoredMeasurement:
    measurement_id: str
    patient_ref: str
    device_id: str
    loinc_code: str
    ucum_unit: str
    value: float | None
    components: Sequence[Component]
    measured_at: datetime
    received_at: datetime
    abnormal: bool


def _code(loinc_code: str) -> dict[str, Any]:
    coding = {"system": LOINC, "code": loinc_code}
    display = display_name(loinc_code)
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def observation(measurement: StoredMeasurement) -> dict[str, Any]:
    """One measurement as a FHIR R4 Observation (vital-signs or laboratory)."""
    category = "laboratory" if measurement.loinc_code in _LABORATORY else "vital-signs"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": measurement.measurement_id,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": _code(measurement.loinc_code),
        "subject": {"identifier": {"system": PATIENT_REF_SYSTEM, "value": measurement.patient_ref}},
        "effectiveDateTime": measurement.measured_at.isoformat(),
        "issued": measurement.received_at.isoformat(),
        "device": {"identifier": {"system": DEVICE_SYSTEM, "value": measurement.device_id}},
    }
    if measurement.components:
        resource["component"] = [
            {"code": _code(c.loinc_code), "valueQuantity": _quantity(c.value, c.ucum_unit)}
            for c in measurement.components
        ]
    elif measurement.value is not None:
        resource["valueQuantity"] = _quantity(measurement.value, measurement.ucum_unit)
    flag = "A" if measurement.abnormal else "N"
    resource["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
    return resource


def searchset(measurements: Sequence[StoredMeasurement]) -> dict[str, Any]:
    """A FHIR searchset Bundle of Observations."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(measurements),
        "entry": [
            {"fullUrl": f"urn:uuid:{m.measurement_id}", "resource": observation(m)}
            for m in measurements
        ],
    }
