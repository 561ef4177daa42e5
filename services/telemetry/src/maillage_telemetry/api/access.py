"""Who uploads and what a caller may see, from the verified token."""

from __future__ import annotations

from maillage_common.auth import Principal, Role
from maillage_common.http.problems import Problem, field_error
from maillage_telemetry.use_cases.common import Uploader


def uploader_of(caller: Principal, kiosk_id: str | None) -> Uploader:
    """A kiosk uploads as itself (token subject, token site; body ids ignored); a service
    names the kiosk it uploads for."""
    if Role.KIOSK in caller.roles:
        if not caller.site_id:
            raise Problem(403, "Forbidden", "a kiosk token must carry its site")
        return Uploader(kiosk_id=caller.subject, site_id=caller.site_id)
    if not kiosk_id:
        raise Problem(
            422,
            "Invalid request",
            "a service uploading for a kiosk must name it",
            errors=[field_error("kiosk_id", "is required for a service caller")],
        )
    return Uploader(kiosk_id=kiosk_id, site_id="")


def site_scope(caller: Principal) -> str | None:
    """Site staff and kiosks see their own site only; others see every site."""
    if caller.roles & {Role.NURSE, Role.KIOSK} and not caller.roles & {
        Role.COORDINATOR,
        Role.SERVICE,
        Role.RESPONDER,
    }:
        return caller.site_id or ""
    return None
