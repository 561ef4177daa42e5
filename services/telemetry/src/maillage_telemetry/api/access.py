"""Who uploads and what a caller may see, from the verified token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import APIKeyHeader

from maillage_common.auth import ACCESS_ATTRIBUTE, Principal, Role
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


DEVICE_CREDENTIAL_HEADER = "X-Device-Credential"
_device_header = APIKeyHeader(
    name=DEVICE_CREDENTIAL_HEADER,
    auto_error=False,
    description="The credential a connected device received when it was enrolled on its kiosk",
)


def device_credential() -> Any:
    """Declare a route open to connected devices presenting their own credential (checked by
    the use case, in the upload's transaction, against the enrolment and its revocation)."""

    async def presented(
        credential: Annotated[str | None, Depends(_device_header)],
    ) -> str:
        if not credential:
            raise Problem(
                401,
                "Unauthorized",
                f"a device credential is required in {DEVICE_CREDENTIAL_HEADER}",
                headers={"WWW-Authenticate": "DeviceCredential"},
            )
        return credential

    setattr(presented, ACCESS_ATTRIBUTE, ["device"])
    return Depends(presented)
