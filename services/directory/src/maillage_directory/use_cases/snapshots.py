"""From stored snapshots to the published events (full state every time)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from maillage.common.v1 import types_pb2
from maillage.directory.v1 import events_pb2
from maillage_directory.db.repositories import StoredAggregate

CHANGES = {
    "created": events_pb2.CHANGE_CREATED,
    "updated": events_pb2.CHANGE_UPDATED,
    "deactivated": events_pb2.CHANGE_DEACTIVATED,
    "reactivated": events_pb2.CHANGE_REACTIVATED,
    # The same state published again under a new version (see use_cases/republish.py):
    # consumers see an update that changes nothing they did not already have, or repairs it.
    "republished": events_pb2.CHANGE_UPDATED,
}


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _enum(prefix: str, value: str) -> str:
    return f"{prefix}_{value.upper()}"


def _point(raw: dict[str, Any]) -> types_pb2.GeoPoint:
    return types_pb2.GeoPoint(latitude=raw["latitude"], longitude=raw["longitude"])


def _solution(raw: dict[str, Any]) -> events_pb2.TechnicalSolution:
    return events_pb2.TechnicalSolution(vendor=raw["vendor"], product=raw["product"])


def _opening_hours(raw: dict[str, Any]) -> events_pb2.OpeningHours:
    return events_pb2.OpeningHours(
        timezone=raw.get("timezone", "Europe/Paris"),
        weekly=[
            events_pb2.WeeklyOpening(
                days=entry["days"], opens=entry["opens"], closes=entry["closes"]
            )
            for entry in raw.get("weekly", [])
        ],
        exceptions=[
            events_pb2.OpeningException(
                date=exception["date"],
                ranges=[
                    events_pb2.OpeningTimeRange(opens=span["opens"], closes=span["closes"])
                    for span in exception["ranges"]
                ],
                reason=exception["reason"],
            )
            for exception in raw.get("exceptions", [])
        ],
        note=raw.get("note", ""),
    )


def professional_changed(
    stored: StoredAggregate, change: str, at: datetime
) -> events_pb2.ProfessionalChanged:
    data = stored.data
    professional = events_pb2.Professional(
        id=str(stored.id),
        rpps=data["rpps"],
        family_name=data["family_name"],
        given_name=data["given_name"],
        profession_code=data["profession_code"],
        specialty_codes=data["specialty_codes"],
        acts=[types_pb2.Act.Value(_enum("ACT", act)) for act in data["acts"]],
        departements=data["departements"],
        practice_locations=[
            events_pb2.PracticeLocation(
                name=place["name"],
                commune_insee=place["commune_insee"],
                location=_point(place["location"]),
            )
            for place in data["practice_locations"]
        ],
        languages=data["languages"],
        technical_solution=_solution(data["technical_solution"]),
        usual_expertise_response_hours=data["usual_expertise_response_hours"],
        accepts_external_patients=data["accepts_external_patients"],
        active=stored.active,
        contact_phone=data["contact_phone"],
        mssante_address=data["mssante_address"],
    )
    return events_pb2.ProfessionalChanged(
        change=CHANGES[change],
        version=stored.version,
        changed_at=_timestamp(at),
        professional=professional,
    )


def site_changed(stored: StoredAggregate, change: str, at: datetime) -> events_pb2.SiteChanged:
    data = stored.data
    site = events_pb2.Site(
        id=str(stored.id),
        name=data["name"],
        finess=data["finess"],
        siret=data["siret"],
        category=events_pb2.SiteCategory.Value(_enum("SITE_CATEGORY", data["category"])),
        deployment_model=events_pb2.DeploymentModel.Value(
            _enum("DEPLOYMENT_MODEL", data["deployment_model"])
        ),
        commune_insee=data["commune_insee"],
        departement=data["departement"],
        location=_point(data["location"]),
        rural=data["rural"],
        under_served=data["under_served"],
        specialties_needed=data["specialties_needed"],
        connected_devices=[
            types_pb2.DeviceKind.Value(_enum("DEVICE_KIND", kind))
            for kind in data["equipment"]["connected_devices"]
        ],
        technical_solution=_solution(data["technical_solution"]),
        receives_external_patients=data["receives_external_patients"],
        active=stored.active,
        opening_hours=_opening_hours(data.get("opening_hours") or {}),
    )
    return events_pb2.SiteChanged(
        change=CHANGES[change], version=stored.version, changed_at=_timestamp(at), site=site
    )


def kiosk_changed(stored: StoredAggregate, change: str, at: datetime) -> events_pb2.KioskChanged:
    data = stored.data
    kiosk = events_pb2.Kiosk(
        id=str(stored.id),
        site_id=data["site_id"],
        label=data["label"],
        devices=[
            events_pb2.KioskDevice(
                kind=types_pb2.DeviceKind.Value(_enum("DEVICE_KIND", device["kind"])),
                device_id=device["device_id"],
                model=device["model"],
            )
            for device in data["devices"]
        ],
        credential_key_id=data.get("credential_key_id", ""),
        credential_revoked=data.get("credential_revoked", False),
        active=stored.active,
    )
    return events_pb2.KioskChanged(
        change=CHANGES[change], version=stored.version, changed_at=_timestamp(at), kiosk=kiosk
    )
