"""Builders of valid directory payloads for the tests."""

from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count(1)


def with_luhn(prefix: str) -> str:
    """`prefix` followed by its Luhn check digit."""
    for digit in "0123456789":
        candidate = prefix + digit
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def new_rpps() -> str:
    return with_luhn(f"1{next(_counter) + 10**8 * 3:09d}"[:10])


def professional(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "rpps": new_rpps(),
        "family_name": "Muller",
        "given_name": "Anne",
        "specialty_codes": ["dermatologie"],
        "acts": ["teleexpertise", "teleconsultation"],
        "departements": ["67", "68"],
        "practice_locations": [
            {
                "name": "Cabinet",
                "commune_insee": "67482",
                "location": {"latitude": 48.5734, "longitude": 7.7521},
            }
        ],
        "languages": ["fr", "de"],
        "technical_solution": {"vendor": "Medaviz", "product": "Expert"},
        "usual_expertise_response_hours": 48,
        "accepts_external_patients": True,
        "contact_phone": "+33388000000",
        "mssante_address": "anne.muller@medecin.mssante.fr",
    }
    body.update(overrides)
    return body


def site(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "EHPAD Les Tilleuls",
        "category": "ehpad",
        "deployment_model": "hotspot_dedie",
        "commune_insee": "57463",
        "location": {"latitude": 49.1193, "longitude": 6.1757},
        "rural": False,
        "specialties_needed": ["SM15"],
        "equipment": {"kiosks": 1, "connected_devices": ["dermatoscope", "ecg"]},
        "receives_external_patients": True,
        "contact_phone": "+33387000000",
        "responsible": "IDE coordinatrice",
    }
    body.update(overrides)
    return body
