"""On-demand dispatch: who is offered a request, in which order (local first, fair rotation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from maillage_booking.domain.territory import proximity_tier


@dataclass(frozen=True, slots=True)
class Candidate:
    """A responder on duty now, with what the ranking needs."""

    responder_id: str
    departements: tuple[str, ...]
    last_offered_at: datetime | None


def eligible_in_tier(
    candidates: list[Candidate], site_departement: str, tier: int, limit: int
) -> list[Candidate]:
    """Candidates within `tier` (1: same département, 2: + same region), least recently
    offered first so that the work rotates fairly."""
    within = [
        c
        for c in candidates
        if (t := proximity_tier(site_departement, c.departements)) is not None and t <= tier
    ]
    within.sort(key=lambda c: (c.last_offered_at is not None, c.last_offered_at or datetime.min))
    return within[:limit]
