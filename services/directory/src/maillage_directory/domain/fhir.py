"""FHIR R4 views of the directory, and the professionals found in a FHIR bundle.

Pure mappings between the directory's snapshots (dicts) and FHIR resources (dicts), in the
shape of the national directory's export (Annuaire Santé): RPPS as the IDNPS identifier,
specialties and professions as codings of the ANS nomenclatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maillage_directory.domain.errors import FieldError
from maillage_directory.domain.opening_hours import OpeningHours, available_time, not_available

IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
RPPS_PREFIX = "8"  # IDNPS = type "8" (RPPS) followed by the RPPS number
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
SIRET_SYSTEM = "https://sirene.fr"
SPECIALTY_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
)
PROFESSION_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
)
INSEE_SYSTEM = "https://www.insee.fr/fr/information/2028040"
LANGUAGE_SYSTEM = "urn:ietf:bcp:47"
DEVICE_KIND_SYSTEM = "https://maillage.example/fhir/CodeSystem/device-kind"
PRIVATE = ("contact_phone", "mssante_address", "responsible")


def _meta(stored: Mapping[str, Any]) -> dict[str, Any]:
    return {"versionId": str(stored["version"]), "lastUpdated": stored["updated_at"]}


def practitioner(stored: Mapping[str, Any], *, private: bool) -> dict[str, Any]:
    data = stored["data"]
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": stored["id"],
        "meta": _meta(stored),
        "identifier": [{"system": IDNPS_SYSTEM, "value": RPPS_PREFIX + data["rpps"]}],
        "active": stored["active"],
        "name": [{"family": data["family_name"], "given": [data["given_name"]]}],
        "communication": [
            {"coding": [{"system": LANGUAGE_SYSTEM, "code": code}]} for code in data["languages"]
        ],
        "qualification": [
            {"code": {"coding": [{"system": PROFESSION_SYSTEM, "code": data["profession_code"]}]}}
        ],
    }
    if private:
        resource["telecom"] = _telecom(
            data.get("contact_phone", ""), data.get("mssante_address", "")
        )
    return resource


def _telecom(phone: str, mssante: str) -> list[dict[str, str]]:
    telecom = []
    if phone:
        telecom.append({"system": "phone", "value": phone, "use": "work"})
    if mssante:
        telecom.append({"system": "email", "value": mssante, "use": "work"})
    return telecom


def practitioner_role(stored: Mapping[str, Any], *, private: bool) -> dict[str, Any]:
    data = stored["data"]
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": stored["id"],
        "meta": _meta(stored),
        "active": stored["active"],
        "practitioner": {"reference": f"Practitioner/{stored['id']}"},
        "code": [{"coding": [{"system": PROFESSION_SYSTEM, "code": data["profession_code"]}]}],
        "specialty": [
            {"coding": [{"system": SPECIALTY_SYSTEM, "code": code}]}
            for code in data["specialty_codes"]
        ],
    }
    if private:
        role["telecom"] = _telecom(data.get("contact_phone", ""), data.get("mssante_address", ""))
    return role


def organization(stored: Mapping[str, Any], *, private: bool) -> dict[str, Any]:
    data = stored["data"]
    identifiers = []
    if data["finess"]:
        identifiers.append({"system": FINESS_SYSTEM, "value": data["finess"]})
    if data["siret"]:
        identifiers.append({"system": SIRET_SYSTEM, "value": data["siret"]})
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": stored["id"],
        "meta": _meta(stored),
        "identifier": identifiers,
        "active": stored["active"],
        "type": [{"coding": [{"code": data["category"]}]}],
        "name": data["name"],
    }
    if private and data.get("contact_phone"):
        resource["telecom"] = _telecom(data["contact_phone"], "")
    return resource


def location(stored: Mapping[str, Any]) -> dict[str, Any]:
    data = stored["data"]
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": stored["id"],
        "meta": _meta(stored),
        "status": "active" if stored["active"] else "inactive",
        "name": data["name"],
        "address": {
            "district": data["departement"],
            "extension": [
                {"url": INSEE_SYSTEM, "valueCode": data["commune_insee"]},
            ],
        },
        "position": {
            "latitude": data["location"]["latitude"],
            "longitude": data["location"]["longitude"],
        },
        "managingOrganization": {"reference": f"Organization/{stored['id']}"},
    }
    hours = OpeningHours.model_validate(data.get("opening_hours") or {})
    if hours.weekly:
        resource["availableTime"] = available_time(hours)
    if hours.exceptions:
        resource["notAvailable"] = not_available(hours)
    if hours.note:
        resource["availabilityExceptions"] = hours.note
    return resource


def device(stored: Mapping[str, Any]) -> dict[str, Any]:
    data = stored["data"]
    return {
        "resourceType": "Device",
        "id": stored["id"],
        "meta": _meta(stored),
        "status": "active" if stored["active"] else "inactive",
        "deviceName": [{"name": data["label"], "type": "user-friendly-name"}],
        "owner": {"reference": f"Organization/{data['site_id']}"},
        "location": {"reference": f"Location/{data['site_id']}"},
        "property": [
            {
                "type": {"coding": [{"system": DEVICE_KIND_SYSTEM, "code": item["kind"]}]},
                "valueCode": [{"text": item["device_id"] or item["model"] or item["kind"]}],
            }
            for item in data["devices"]
        ],
    }


@dataclass(slots=True)
class BundleEntry:
    """A professional assembled from a Practitioner and its PractitionerRoles."""

    position: int
    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The JSON objects of a FHIR list element; anything malformed is skipped, not fatal."""
    if isinstance(value, Mapping):
        return [value]
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _rpps_of(resource: Mapping[str, Any]) -> str | None:
    for identifier in _objects(resource.get("identifier")):
        value = _text(identifier.get("value"))
        if identifier.get("system") == IDNPS_SYSTEM and value.startswith(RPPS_PREFIX):
            return value[len(RPPS_PREFIX) :]
    return None


def _codes(concepts: Any, system: str) -> list[str]:
    return [
        _text(coding.get("code"))
        for concept in _objects(concepts)
        for coding in _objects(concept.get("coding"))
        if coding.get("system") == system and _text(coding.get("code"))
    ]


def professionals_in_bundle(bundle: Any) -> tuple[list[BundleEntry], list[FieldError]]:
    """Professionals from a Bundle's Practitioner/PractitionerRole entries.

    Returns the entries (each with its own errors) and the errors that make the bundle
    unusable as a whole (not a Bundle, entries not a list).
    """
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return [], [FieldError("resourceType", "expected a FHIR R4 Bundle")]
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return [], [FieldError("entry", "a Bundle needs a list of entries")]
    practitioners: dict[str, BundleEntry] = {}
    roles: list[Mapping[str, Any]] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            continue
        if resource.get("resourceType") == "Practitioner":
            practitioners[str(resource.get("id", index))] = _from_practitioner(index, resource)
        elif resource.get("resourceType") == "PractitionerRole":
            roles.append(resource)
    for role in roles:
        references = _objects(role.get("practitioner"))
        reference = _text(references[0].get("reference")) if references else ""
        target = practitioners.get(reference.removeprefix("Practitioner/"))
        if target is not None:
            _add_role(target.fields, role)
    return list(practitioners.values()), []


def _add_role(fields: dict[str, Any], role: Mapping[str, Any]) -> None:
    fields.setdefault("specialty_codes", []).extend(_codes(role.get("specialty"), SPECIALTY_SYSTEM))
    for telecom in _objects(role.get("telecom")):
        if telecom.get("system") == "phone":
            fields.setdefault("contact_phone", _text(telecom.get("value")))
        elif telecom.get("system") == "email":
            fields.setdefault("mssante_address", _text(telecom.get("value")))


def _from_practitioner(index: int, resource: Mapping[str, Any]) -> BundleEntry:
    entry = BundleEntry(index)
    rpps = _rpps_of(resource)
    if rpps is None:
        entry.errors.append(FieldError(f"entry.{index}.identifier", "no RPPS (IDNPS 8…)"))
    names = _objects(resource.get("name"))
    name = names[0] if names else {}
    given = name.get("given")
    entry.fields = {
        "rpps": rpps or "",
        "family_name": _text(name.get("family")),
        "given_name": " ".join(_text(g) for g in given) if isinstance(given, list) else "",
        "languages": _codes(resource.get("communication"), LANGUAGE_SYSTEM) or ["fr"],
    }
    professions = [
        code
        for qualification in _objects(resource.get("qualification"))
        for code in _codes(qualification.get("code"), PROFESSION_SYSTEM)
    ]
    if professions:
        entry.fields["profession_code"] = professions[0]
    return entry


def sites_in_bundle(bundle: Any) -> list[BundleEntry]:
    """Sites from a Bundle's Organization entries, placed by the Location they manage.

    The shape is the one `organization` and `location` export: FINESS/SIRET identifiers,
    the category as the type code, the commune as the address' INSEE extension.
    """
    if not isinstance(bundle, Mapping) or not isinstance(bundle.get("entry"), list):
        return []
    resources = [
        (index, entry["resource"])
        for index, entry in enumerate(bundle["entry"])
        if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping)
    ]
    places: dict[str, Mapping[str, Any]] = {}
    for _, resource in resources:
        if resource.get("resourceType") == "Location":
            managers = _objects(resource.get("managingOrganization"))
            reference = _text(managers[0].get("reference")) if managers else ""
            places[reference.removeprefix("Organization/")] = resource
    return [
        _from_organization(index, resource, places.get(str(resource.get("id"))))
        for index, resource in resources
        if resource.get("resourceType") == "Organization"
    ]


def _identifier(resource: Mapping[str, Any], system: str) -> str:
    for identifier in _objects(resource.get("identifier")):
        if identifier.get("system") == system:
            return _text(identifier.get("value"))
    return ""


def _from_organization(
    index: int, resource: Mapping[str, Any], place: Mapping[str, Any] | None
) -> BundleEntry:
    entry = BundleEntry(index)
    types = [
        _text(coding.get("code"))
        for concept in _objects(resource.get("type"))
        for coding in _objects(concept.get("coding"))
    ]
    entry.fields = {
        "name": _text(resource.get("name")),
        "finess": _identifier(resource, FINESS_SYSTEM),
        "siret": _identifier(resource, SIRET_SYSTEM),
        "category": types[0] if types else "",
    }
    if place is None:
        entry.errors.append(
            FieldError(f"entry.{index}", "an Organization needs a Location (position, commune)")
        )
        return entry
    positions = _objects(place.get("position"))
    addresses = _objects(place.get("address"))
    communes = [
        _text(extension.get("valueCode"))
        for address in addresses
        for extension in _objects(address.get("extension"))
        if extension.get("url") == INSEE_SYSTEM
    ]
    entry.fields["commune_insee"] = communes[0] if communes else ""
    entry.fields["location"] = dict(positions[0]) if positions else {}
    return entry
