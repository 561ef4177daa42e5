"""FHIR R4 Observation export."""

from __future__ import annotations

from datetime import UTC, datetime

from maillage_telemetry.domain.fhir import LOINC, UCUM, StoredMeasurement, observation, searchset
from maillage_telemetry.domain.measurements import Component

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def stored(**changes: object) -> StoredMeasurement:
    fields: dict[str, object] = {
        "measurement_id": "5c0f8a4e-3b9e-4a43-9a57-0d8f0e7b1a11",
        "patient_ref": "pref-1",
        "device_id": "oxi-1",
        "loinc_code": "59408-5",
        "ucum_unit": "%",
        "value": 88.0,
        "components": (),
        "measured_at": AT,
        "received_at": AT,
        "abnormal": True,
    }
    fields.update(changes)
    return StoredMeasurement(**fields)  # type: ignore[arg-type]


def test_a_single_value_becomes_a_coded_observation_with_a_ucum_quantity() -> None:
    resource = observation(stored())
    assert resource["resourceType"] == "Observation"
    assert resource["status"] == "final"
    assert resource["code"]["coding"][0]["system"] == LOINC
    assert resource["code"]["coding"][0]["code"] == "59408-5"
    assert resource["valueQuantity"] == {"value": 88.0, "unit": "%", "system": UCUM, "code": "%"}
    assert resource["subject"]["identifier"]["value"] == "pref-1"
    assert resource["effectiveDateTime"] == "2026-11-22T09:00:00+00:00"
    assert resource["interpretation"][0]["coding"][0]["code"] == "A"
    assert resource["category"][0]["coding"][0]["code"] == "vital-signs"


def test_blood_pressure_becomes_components_without_a_top_level_value() -> None:
    resource = observation(
        stored(
            loinc_code="85354-9",
            ucum_unit="mm[Hg]",
            value=None,
            components=(Component("8480-6", "mm[Hg]", 120), Component("8462-4", "mm[Hg]", 80)),
            abnormal=False,
        )
    )
    assert "valueQuantity" not in resource
    codes = [c["code"]["coding"][0]["code"] for c in resource["component"]]
    assert codes == ["8480-6", "8462-4"]
    assert resource["component"][0]["valueQuantity"]["code"] == "mm[Hg]"
    assert resource["interpretation"][0]["coding"][0]["code"] == "N"


def test_glucose_is_a_laboratory_observation_and_the_bundle_counts_entries() -> None:
    bundle = searchset([stored(loinc_code="2339-0", ucum_unit="mg/dL", value=95.0), stored()])
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 2
    first = bundle["entry"][0]["resource"]
    assert first["category"][0]["coding"][0]["code"] == "laboratory"
