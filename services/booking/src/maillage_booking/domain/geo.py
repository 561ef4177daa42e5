"""Distances for the free-slot search by distance (great-circle, WGS 84 degrees)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
MAX_RADIUS_KM = 1000.0


@dataclass(frozen=True, slots=True)
class Point:
    latitude: float
    longitude: float


def distance_km(a: Point, b: Point) -> float:
    """Haversine distance: within 0.5 % of the ellipsoid, ample for "within R km"."""
    phi1, phi2 = math.radians(a.latitude), math.radians(b.latitude)
    dphi = phi2 - phi1
    dlambda = math.radians(b.longitude - a.longitude)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def nearest_km(
    origin: Point, latitudes: Sequence[float], longitudes: Sequence[float]
) -> float | None:
    """Distance to the nearest of several places (a professional's practice locations);
    None when none has coordinates."""
    distances = [
        distance_km(origin, Point(lat, lon))
        for lat, lon in zip(latitudes, longitudes, strict=False)
    ]
    return min(distances) if distances else None
