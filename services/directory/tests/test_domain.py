"""Pure rules: identifiers, geography, specialties, aggregate validation."""

from __future__ import annotations

import pytest

from maillage_directory.domain import geography, identifiers
from maillage_directory.domain.errors import InvalidValueError
from maillage_directory.domain.model import (
    ProfessionalFields,
    SiteFields,
    professional_errors,
    site_errors,
)
from maillage_directory.domain.specialties import specialty_list

from directory_testing import professional, site, with_luhn


def test_rpps_accepts_a_luhn_valid_number_and_rejects_a_wrong_key() -> None:
    valid = with_luhn("1000000000")
    assert identifiers.validate_rpps(valid) == valid
    wrong = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    with pytest.raises(InvalidValueError, match="Luhn"):
        identifiers.validate_rpps(wrong)


@pytest.mark.parametrize("value", ["123", "1234567890a", "123456789012"])
def test_rpps_needs_eleven_digits(value: str) -> None:
    with pytest.raises(InvalidValueError, match="11 digits"):
        identifiers.validate_rpps(value)


def test_finess_checks_its_key_and_reads_corsica_as_20() -> None:
    mainland = with_luhn("67078000")
    assert identifiers.validate_finess(mainland) == mainland
    corsica = "2A" + with_luhn("20001234")[2:]
    assert identifiers.validate_finess(corsica.lower()) == corsica
    with pytest.raises(InvalidValueError, match="Luhn"):
        identifiers.validate_finess(mainland[:-1] + str((int(mainland[-1]) + 1) % 10))
    with pytest.raises(InvalidValueError, match="9 characters"):
        identifiers.validate_finess("6707800")


def test_siret_uses_luhn_except_la_poste() -> None:
    assert identifiers.validate_siret("73282932000074") == "73282932000074"
    with pytest.raises(InvalidValueError):
        identifiers.validate_siret("73282932000075")
    # La Poste establishment: fails Luhn, digit sum is a multiple of 5.
    assert identifiers.validate_siret("35600000000001") == "35600000000001"
    with pytest.raises(InvalidValueError):
        identifiers.validate_siret("35600000000104")


def test_communes_come_from_the_official_list() -> None:
    assert geography.validate_commune("67482").name == "Strasbourg"
    assert geography.validate_commune("2a004").departement == "2A"
    assert geography.communes()["75056"].population > 2_000_000
    with pytest.raises(InvalidValueError, match="official list"):
        geography.validate_commune("99999")


@pytest.mark.parametrize(
    ("lat", "lon"), [(48.57, 7.75), (-21.1, 55.5), (4.9, -52.3), (41.9, 8.74), (-17.5, -149.6)]
)
def test_points_in_france_are_accepted(lat: float, lon: float) -> None:
    assert geography.validate_point(lat, lon) == (lat, lon)


@pytest.mark.parametrize(("lat", "lon"), [(52.52, 13.40), (0.0, 0.0), (40.4, -3.7)])
def test_points_outside_france_are_rejected(lat: float, lon: float) -> None:
    with pytest.raises(InvalidValueError, match="outside France"):
        geography.validate_point(lat, lon)


def test_haversine_strasbourg_metz() -> None:
    assert 128 < geography.haversine_km(48.5734, 7.7521, 49.1193, 6.1757) < 133


def test_specialty_list_resolves_codes_and_slugs_and_covers_the_issue() -> None:
    codes = specialty_list()
    assert codes.resolve("dermatologie") == codes.resolve("SM15")
    assert len(codes.by_code) >= 12
    with pytest.raises(InvalidValueError, match="specialty list"):
        codes.resolve("astrologie")


def test_professional_errors_name_each_faulty_field() -> None:
    fields = ProfessionalFields.model_validate(
        professional(
            rpps="12345678901",
            specialty_codes=["astrologie"],
            departements=["67", "00"],
            practice_locations=[
                {"commune_insee": "99999", "location": {"latitude": 52.5, "longitude": 13.4}}
            ],
        )
    )
    _, errors = professional_errors(fields)
    assert {e.field for e in errors} == {
        "rpps",
        "specialty_codes.0",
        "departements.1",
        "practice_locations.0.commune_insee",
        "practice_locations.0.location",
    }


def test_site_departement_follows_its_commune() -> None:
    normalised, errors = site_errors(SiteFields.model_validate(site()))
    assert errors == []
    assert normalised.departement == "57"
    _, errors = site_errors(SiteFields.model_validate(site(departement="67")))
    assert [e.field for e in errors] == ["departement"]


def test_commune_codes_are_normalised_in_practice_locations() -> None:
    place = {"commune_insee": "2a004", "location": {"latitude": 41.92, "longitude": 8.74}}
    fields = ProfessionalFields.model_validate(professional(practice_locations=[place]))
    normalised, errors = professional_errors(fields)
    assert errors == []
    assert normalised.practice_locations[0].commune_insee == "2A004"
