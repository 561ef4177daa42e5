"""National identifiers: RPPS, FINESS, SIRET, each with its Luhn check key.

Each validator returns the normalised value or raises `InvalidValueError` with the reason.
"""

from __future__ import annotations

import re

from maillage_directory.domain.errors import InvalidValueError

_DIGITS = re.compile(r"\d+")
# La Poste's establishments share the SIREN 356 000 000, whose SIRETs do not satisfy Luhn:
# INSEE checks them with "the sum of the digits is a multiple of 5" instead.
LA_POSTE_SIREN = "356000000"


def luhn_valid(digits: str) -> bool:
    """True when `digits` (only 0-9) carries a valid Luhn check digit at its end."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _compact(value: str) -> str:
    return value.replace(" ", "").strip()


def validate_rpps(value: str) -> str:
    """An RPPS number: 11 digits whose last one is a Luhn key."""
    rpps = _compact(value)
    if len(rpps) != 11 or not _DIGITS.fullmatch(rpps):
        raise InvalidValueError("an RPPS number has exactly 11 digits")
    if not luhn_valid(rpps):
        raise InvalidValueError("the RPPS check digit (Luhn key) is wrong")
    return rpps


def validate_finess(value: str) -> str:
    """A FINESS number: 9 characters, département prefix then a Luhn key.

    Corsican numbers start with 2A or 2B; the key is computed as if they read 20, the
    historical numbering of Corsica before it was split.
    """
    finess = _compact(value).upper()
    if len(finess) != 9:
        raise InvalidValueError("a FINESS number has exactly 9 characters")
    digits = finess
    if finess[:2] in {"2A", "2B"}:
        digits = "20" + finess[2:]
    if not _DIGITS.fullmatch(digits):
        raise InvalidValueError("a FINESS number is made of digits (2A/2B allowed for Corsica)")
    if not luhn_valid(digits):
        raise InvalidValueError("the FINESS check digit (Luhn key) is wrong")
    return finess


def validate_siret(value: str) -> str:
    """A SIRET number: 14 digits, Luhn-valid (La Poste's: digit sum multiple of 5)."""
    siret = _compact(value)
    if len(siret) != 14 or not _DIGITS.fullmatch(siret):
        raise InvalidValueError("a SIRET number has exactly 14 digits")
    la_poste = siret.startswith(LA_POSTE_SIREN) and sum(int(c) for c in siret) % 5 == 0
    if not (luhn_valid(siret) or la_poste):
        raise InvalidValueError("the SIRET check digit (Luhn key) is wrong")
    return siret
