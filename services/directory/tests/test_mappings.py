"""Pure mappings: CSV parsing and FHIR resources (no infrastructure)."""

from __future__ import annotations

from typing import Any

import pytest

from maillage_directory.domain import fhir
from maillage_directory.domain.errors import ValidationFailedError
from maillage_directory.domain.model import ProfessionalFields
from maillage_directory.use_cases.imports import parse_csv

from directory_testing import professional


def _stored(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "b5c1c3c2-0000-4000-8000-000000000001",
        "version": 3,
        "active": True,
        "data": data,
        "updated_at": "2026-11-22T10:00:00+00:00",
    }


def test_csv_accepts_semicolons_and_a_bom() -> None:
    rows = parse_csv("\ufeffrpps;family_name;given_name\n1;A;B\n".encode())
    assert rows == [{"rpps": "1", "family_name": "A", "given_name": "B"}]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe\x00", "UTF-8"),
        (b"name,surname\nx,y\n", "missing columns: rpps, family_name, given_name"),
        (b"rpps,family_name,given_name\n1,A,B,extra\n", "more cells"),
    ],
)
def test_unreadable_csv_names_the_file(content: bytes, reason: str) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        parse_csv(content)
    assert caught.value.errors[0].field == "file"
    assert reason in caught.value.errors[0].reason


def test_practitioner_carries_idnps_and_hides_contacts_from_the_public() -> None:
    shape = ProfessionalFields.model_validate(professional(specialty_codes=["SM15"]))
    data = {**shape.model_dump(mode="json"), "rpps": "10000000009"}
    public = fhir.practitioner(_stored(data), private=False)
    assert public["identifier"][0]["value"] == "810000000009"
    assert "telecom" not in public
    private = fhir.practitioner(_stored(data), private=True)
    assert [t["system"] for t in private["telecom"]] == ["phone", "email"]
    role = fhir.practitioner_role(_stored(data), private=False)
    assert role["specialty"][0]["coding"][0] == {"system": fhir.SPECIALTY_SYSTEM, "code": "SM15"}


def test_bundle_roles_attach_to_their_practitioner() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "Practitioner",
                    "id": "p1",
                    "identifier": [{"system": fhir.IDNPS_SYSTEM, "value": "810000000009"}],
                    "name": [{"family": "Roth", "given": ["Paul", "Henri"]}],
                }
            },
            {
                "resource": {
                    "resourceType": "PractitionerRole",
                    "practitioner": {"reference": "Practitioner/p1"},
                    "specialty": [{"coding": [{"system": fhir.SPECIALTY_SYSTEM, "code": "SM04"}]}],
                    "telecom": [{"system": "phone", "value": "+33388000001"}],
                }
            },
            {"resource": {"resourceType": "Practitioner", "id": "p2", "identifier": []}},
        ],
    }
    entries, errors = fhir.professionals_in_bundle(bundle)
    assert errors == []
    first, second = entries
    assert first.fields["rpps"] == "10000000009"
    assert first.fields["given_name"] == "Paul Henri"
    assert first.fields["specialty_codes"] == ["SM04"]
    assert first.fields["contact_phone"] == "+33388000001"
    assert [e.field for e in second.errors] == ["entry.2.identifier"]


def test_not_a_bundle_is_refused_as_a_whole() -> None:
    _, errors = fhir.professionals_in_bundle({"resourceType": "Patient"})
    assert [e.field for e in errors] == ["resourceType"]


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Practitioner", "name": {"family": "X"}, "identifier": "8123"},
        {"resourceType": "Practitioner", "name": [1, "x"], "identifier": [None, 3]},
        {"resourceType": "Practitioner", "name": [{"given": "Anne"}], "qualification": [7]},
        {"resourceType": "PractitionerRole", "practitioner": "Practitioner/p", "specialty": 5},
        {"resourceType": "PractitionerRole", "practitioner": {"reference": 5}, "telecom": [2]},
    ],
)
def test_malformed_resources_are_reported_never_crash(resource: dict[str, Any]) -> None:
    entries, errors = fhir.professionals_in_bundle(
        {"resourceType": "Bundle", "entry": [{"resource": resource}, 3, "x"]}
    )
    assert errors == []
    assert all(e.fields.get("rpps") == "" for e in entries)
