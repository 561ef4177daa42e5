"""Communes, départements and the bounding boxes of France (pure lookups, no I/O at import).

The commune list is derived from `@etalab/decoupage-administratif` (see reference/README.md);
it is read once, on first use, from the package's own data files.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

from maillage_directory.domain.errors import InvalidValueError


@dataclass(frozen=True, slots=True)
class Commune:
    code: str
    name: str
    departement: str
    population: int


@dataclass(frozen=True, slots=True)
class Departement:
    code: str
    name: str
    region: str
    zone: str


@dataclass(frozen=True, slots=True)
class BoundingBox:
    name: str
    south: float
    west: float
    north: float
    east: float

    def contains(self, latitude: float, longitude: float) -> bool:
        return self.south <= latitude <= self.north and self.west <= longitude <= self.east


# Generous boxes (a few km of margin) around metropolitan France, Corsica and the overseas
# départements and collectivités: a typo in a coordinate lands far outside all of them.
FRANCE_BOXES = (
    BoundingBox("metropole", 41.3, -5.3, 51.2, 9.7),
    BoundingBox("guadeloupe", 15.8, -61.9, 16.6, -60.9),
    BoundingBox("martinique", 14.3, -61.3, 14.9, -60.8),
    BoundingBox("guyane", 2.1, -54.7, 5.9, -51.5),
    BoundingBox("reunion", -21.5, 55.2, -20.8, 55.9),
    BoundingBox("mayotte", -13.1, 44.9, -12.6, 45.4),
    BoundingBox("saint-pierre-et-miquelon", 46.7, -56.5, 47.2, -56.1),
    BoundingBox("saint-barthelemy-saint-martin", 17.8, -63.2, 18.2, -62.7),
    BoundingBox("wallis-et-futuna", -14.4, -178.3, -13.1, -176.0),
    BoundingBox("polynesie", -28.0, -155.0, -7.8, -134.0),
    BoundingBox("nouvelle-caledonie", -23.0, 163.5, -19.5, 168.2),
)

EARTH_RADIUS_KM = 6371.0088


def _reference_text(name: str) -> str:
    data = resources.files("maillage_directory.domain.reference").joinpath(name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8")


@cache
def communes() -> dict[str, Commune]:
    """Every current commune (and municipal arrondissement) by INSEE code."""
    reader = csv.DictReader(io.StringIO(_reference_text("communes.tsv.gz")), delimiter="\t")
    return {
        row["code"]: Commune(row["code"], row["name"], row["departement"], int(row["population"]))
        for row in reader
    }


@cache
def departements() -> dict[str, Departement]:
    """Every département (and overseas collectivité) by INSEE code."""
    reader = csv.DictReader(io.StringIO(_reference_text("departements.tsv")), delimiter="\t")
    return {
        row["code"]: Departement(row["code"], row["name"], row["region"], row["zone"])
        for row in reader
    }


def validate_commune(code: str) -> Commune:
    """The commune with INSEE code `code`, or InvalidValueError."""
    normalised = code.strip().upper()
    commune = communes().get(normalised)
    if commune is None:
        raise InvalidValueError(f"{code!r} is not an INSEE commune code of the official list")
    return commune


def validate_departement(code: str) -> str:
    normalised = code.strip().upper()
    if normalised not in departements():
        raise InvalidValueError(f"{code!r} is not an INSEE département code")
    return normalised


def validate_point(latitude: float, longitude: float) -> tuple[float, float]:
    """Coordinates must be finite and fall inside France (metropolitan or overseas)."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise InvalidValueError("coordinates must be finite numbers")
    if not any(box.contains(latitude, longitude) for box in FRANCE_BOXES):
        raise InvalidValueError("coordinates fall outside France (metropolitan and overseas)")
    return latitude, longitude


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (the same formula the search runs in SQL)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


def bounding_box(latitude: float, longitude: float, radius_km: float) -> BoundingBox:
    """A box enclosing the disc of `radius_km` around the point (the SQL prefilter)."""
    dlat = math.degrees(radius_km / EARTH_RADIUS_KM)
    cos_lat = max(math.cos(math.radians(latitude)), 0.01)
    dlon = min(180.0, math.degrees(radius_km / (EARTH_RADIUS_KM * cos_lat)))
    return BoundingBox(
        "search", latitude - dlat, longitude - dlon, latitude + dlat, longitude + dlon
    )
