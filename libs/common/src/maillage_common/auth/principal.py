from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    KIOSK = "kiosk"
    NURSE = "nurse"
    RESPONDER = "responder"
    COORDINATOR = "coordinator"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the verified token says.

    `site_id` scopes kiosks, nurses and site staff to their site: an object owned by
    another site must read as 404, and a site id sent in a body is ignored in favour
    of this one. `rpps` identifies a professional.
    """

    subject: str
    roles: frozenset[Role]
    site_id: str | None = None
    rpps: str | None = None

    def has_any(self, roles: frozenset[Role]) -> bool:
        return not self.roles.isdisjoint(roles)
