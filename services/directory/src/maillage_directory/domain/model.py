"""The directory's aggregates as value objects, and the rules each must satisfy.

Shapes are pydantic models (typing and JSON), the rules that need reference data
(identifiers, communes, specialties, coordinates in France) are checked by the
`*_errors` functions, which name each faulty field and normalise what they accept.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from maillage_directory.domain import geography, identifiers
from maillage_directory.domain.errors import FieldError, InvalidValueError
from maillage_directory.domain.opening_hours import OpeningHours, opening_hours_errors
from maillage_directory.domain.specialties import specialty_list


class Act(StrEnum):
    TELECONSULTATION = "teleconsultation"
    TELEEXPERTISE = "teleexpertise"
    TELESURVEILLANCE = "telesurveillance"
    TELEASSISTANCE = "teleassistance"
    TELESOIN = "telesoin"


class SiteCategory(StrEnum):
    MEDICO_SOCIAL = "medico_social"
    EHPAD = "ehpad"
    MSP = "msp"
    CPTS = "cpts"
    CENTRE_DE_SANTE = "centre_de_sante"
    PARAMEDICAL = "paramedical"
    PHARMACIE = "pharmacie"
    ETABLISSEMENT_DE_SANTE = "etablissement_de_sante"
    COLLECTIVITE = "collectivite"


class DeploymentModel(StrEnum):
    HOTSPOT_DEDIE = "hotspot_dedie"
    HOTSPOT_MUTUALISE = "hotspot_mutualise"
    SITE_CLASSIQUE = "site_classique"
    UNITE_MOBILE_PROGRAMMEE = "unite_mobile_programmee"
    UNITE_MOBILE_NON_PROGRAMMEE = "unite_mobile_non_programmee"


class DeviceKind(StrEnum):
    STETHOSCOPE = "stethoscope"
    OTOSCOPE = "otoscope"
    DERMATOSCOPE = "dermatoscope"
    ECG = "ecg"
    OXIMETER = "oximeter"
    BLOOD_PRESSURE_MONITOR = "blood_pressure_monitor"
    THERMOMETER = "thermometer"
    SCALE = "scale"


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GeoPoint(_Shape):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class TechnicalSolution(_Shape):
    vendor: str = Field(default="", max_length=200)
    product: str = Field(default="", max_length=200)


class PracticeLocation(_Shape):
    name: str = Field(default="", max_length=300)
    commune_insee: str = Field(min_length=5, max_length=5)
    location: GeoPoint


class ProfessionalFields(_Shape):
    """Everything a caller states about a professional (the whole state, PUT semantics)."""

    rpps: str
    family_name: str = Field(min_length=1, max_length=200)
    given_name: str = Field(min_length=1, max_length=200)
    profession_code: str = Field(default="10", max_length=10)
    specialty_codes: list[str] = Field(default_factory=list, max_length=20)
    acts: list[Act] = Field(default_factory=list)
    departements: list[str] = Field(default_factory=list, max_length=120)
    practice_locations: list[PracticeLocation] = Field(default_factory=list, max_length=20)
    languages: list[str] = Field(default_factory=lambda: ["fr"], max_length=20)
    technical_solution: TechnicalSolution = Field(default_factory=TechnicalSolution)
    usual_expertise_response_hours: int = Field(default=0, ge=0, le=24 * 90)
    accepts_external_patients: bool = False
    contact_phone: str = Field(default="", max_length=20, pattern=r"^(\+[1-9]\d{6,14})?$")
    mssante_address: str = Field(default="", max_length=254)


class Equipment(_Shape):
    kiosks: int = Field(default=0, ge=0, le=1000)
    connected_devices: list[DeviceKind] = Field(default_factory=list)


class SiteFields(_Shape):
    """Everything a caller states about a site (requérant)."""

    name: str = Field(min_length=1, max_length=300)
    finess: str = ""
    siret: str = ""
    category: SiteCategory
    deployment_model: DeploymentModel = DeploymentModel.SITE_CLASSIQUE
    commune_insee: str
    departement: str = Field(default="", description="derived from the commune when empty")
    location: GeoPoint
    rural: bool = False
    under_served: bool = Field(default=False, description="zone sous-dotée (APL < 4)")
    specialties_needed: list[str] = Field(default_factory=list, max_length=50)
    equipment: Equipment = Field(default_factory=Equipment)
    technical_solution: TechnicalSolution = Field(default_factory=TechnicalSolution)
    receives_external_patients: bool = False
    opening_hours: OpeningHours = Field(
        default_factory=OpeningHours, description="weekly ranges and dated exceptions (Paris time)"
    )
    responsible: str = Field(default="", max_length=300)
    contact_phone: str = Field(default="", max_length=20, pattern=r"^(\+[1-9]\d{6,14})?$")


class KioskDevice(_Shape):
    kind: DeviceKind
    device_id: str = Field(default="", max_length=200)
    model: str = Field(default="", max_length=200)


class KioskFields(_Shape):
    """What a caller states about a kiosk (its site, label and device inventory)."""

    site_id: str = Field(default="", max_length=64)
    label: str = Field(min_length=1, max_length=200)
    devices: list[KioskDevice] = Field(default_factory=list, max_length=50)


_T = TypeVar("_T")


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def check(self, field: str, rule: Callable[..., _T], *args: Any) -> _T | None:
        try:
            return rule(*args)
        except InvalidValueError as error:
            self.errors.append(FieldError(field, error.reason))
            return None


def _specialties(checker: _Checker, field: str, values: list[str]) -> list[str]:
    codes = specialty_list()
    resolved = [checker.check(f"{field}.{i}", codes.resolve, v) for i, v in enumerate(values)]
    return sorted({code for code in resolved if code is not None})


def _departements(checker: _Checker, field: str, values: list[str]) -> list[str]:
    checked = [
        checker.check(f"{field}.{i}", geography.validate_departement, v)
        for i, v in enumerate(values)
    ]
    return sorted({code for code in checked if code is not None})


def _point(checker: _Checker, field: str, point: GeoPoint) -> None:
    checker.check(field, lambda: geography.validate_point(point.latitude, point.longitude))


def professional_errors(
    fields: ProfessionalFields,
) -> tuple[ProfessionalFields, list[FieldError]]:
    """Check and normalise a professional; the errors name each faulty field."""
    checker = _Checker()
    rpps = checker.check("rpps", lambda: identifiers.validate_rpps(fields.rpps))
    specialties = _specialties(checker, "specialty_codes", fields.specialty_codes)
    departements = _departements(checker, "departements", fields.departements)
    places = []
    for index, place in enumerate(fields.practice_locations):
        prefix = f"practice_locations.{index}"
        commune = checker.check(
            f"{prefix}.commune_insee", geography.validate_commune, place.commune_insee
        )
        _point(checker, f"{prefix}.location", place.location)
        code = commune.code if commune is not None else place.commune_insee
        places.append(place.model_copy(update={"commune_insee": code}))
    normalised = fields.model_copy(
        update={
            "rpps": rpps or fields.rpps,
            "practice_locations": places,
            "specialty_codes": specialties,
            "departements": departements,
            "acts": sorted(set(fields.acts)),
            "languages": sorted({language.lower() for language in fields.languages}),
        }
    )
    return normalised, checker.errors


def site_errors(fields: SiteFields) -> tuple[SiteFields, list[FieldError]]:
    """Check and normalise a site; the département follows from the commune."""
    checker = _Checker()
    update: dict[str, object] = {}
    if fields.finess:
        update["finess"] = checker.check(
            "finess", lambda: identifiers.validate_finess(fields.finess)
        )
    if fields.siret:
        update["siret"] = checker.check("siret", lambda: identifiers.validate_siret(fields.siret))
    commune = checker.check(
        "commune_insee", lambda: geography.validate_commune(fields.commune_insee)
    )
    if commune is not None:
        update["commune_insee"] = commune.code
        if fields.departement and fields.departement.upper() != commune.departement:
            checker.errors.append(
                FieldError("departement", f"commune {commune.code} is in {commune.departement}")
            )
        update["departement"] = commune.departement
    _point(checker, "location", fields.location)
    update["specialties_needed"] = _specialties(
        checker, "specialties_needed", fields.specialties_needed
    )
    update["opening_hours"], hour_errors = opening_hours_errors(fields.opening_hours)
    checker.errors += hour_errors
    normalised = fields.model_copy(update={k: v for k, v in update.items() if v is not None})
    return normalised, checker.errors
