"""The versioned specialty reference list (codes of the national nomenclature TRE_R38)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from maillage_directory.domain.errors import InvalidValueError


@dataclass(frozen=True, slots=True)
class Specialty:
    code: str
    slug: str
    label: str


@dataclass(frozen=True, slots=True)
class SpecialtyList:
    version: str
    nomenclature: str
    # The TRE_R38 CodeSystem version the codes were checked against.
    nomenclature_version: str
    by_code: dict[str, Specialty]

    def resolve(self, value: str) -> str:
        """The national code for `value` (a code or the list's slug), or InvalidValueError."""
        key = value.strip()
        if key.upper() in self.by_code:
            return key.upper()
        for specialty in self.by_code.values():
            if specialty.slug == key.lower():
                return specialty.code
        raise InvalidValueError(f"{value!r} is not in the specialty list {self.version}")


@cache
def specialty_list() -> SpecialtyList:
    raw = json.loads(
        resources.files("maillage_directory.domain.reference")
        .joinpath("specialties.json")
        .read_text("utf-8")
    )
    entries = [Specialty(e["code"], e["slug"], e["label"]) for e in raw["specialties"]]
    return SpecialtyList(
        raw["version"],
        raw["nomenclature"],
        raw["nomenclature_version"],
        {e.code: e for e in entries},
    )
