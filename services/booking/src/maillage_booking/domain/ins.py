"""INS (NIR or NIA) checksum: 13 characters plus a 2-digit key, Corsica 2A/2B mapped to 19/18."""

from __future__ import annotations

import re

from maillage_booking.domain.errors import DomainError

_SHAPE = re.compile(r"^[1-8]\d{2}(0[1-9]|1[0-2]|[2-9]\d)(\d{2}|2A|2B)\d{6}\d{2}$")


def normalise_ins(raw: str) -> str:
    """Remove the spaces people type in a NIR and upper-case the Corsican letter."""
    return re.sub(r"\s+", "", raw).upper()


def ins_key(first13: str) -> int:
    """97 - (number mod 97), where 2A counts as 19 and 2B as 18 (the département digits)."""
    departement = {"2A": "19", "2B": "18"}.get(first13[5:7], first13[5:7])
    return 97 - int(first13[:5] + departement + first13[7:]) % 97


def validate_ins(raw: str) -> str:
    """Return the normalised INS or raise naming the reason; a valid key never qualifies it."""
    ins = normalise_ins(raw)
    if len(ins) != 15:
        raise DomainError("ins", "an INS has 15 characters (13 plus a 2-digit key)")
    if not _SHAPE.match(ins):
        raise DomainError("ins", "malformed INS (sex, year, month, département, commune, rank)")
    if ins_key(ins[:13]) != int(ins[13:]):
        raise DomainError("ins", "INS key does not match (97 - first 13 digits mod 97)")
    return ins
