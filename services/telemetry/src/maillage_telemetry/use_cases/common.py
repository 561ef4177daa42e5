"""What several use cases share: who uploads, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass

from maillage_telemetry.db.repositories import Placement


@dataclass(frozen=True, slots=True)
class Uploader:
    """The kiosk a reading or heartbeat comes from (from its token, or named by a service),
    and the one device it is restricted to when a device uploads with its own credential."""

    kiosk_id: str
    site_id: str
    device_id: str | None = None


class KioskNotAdmittedError(Exception):
    """The directory says this kiosk is deactivated or its credential is revoked."""


def admit(placement: Placement) -> None:
    if placement.known and (placement.credential_revoked or not placement.active):
        raise KioskNotAdmittedError("this kiosk is deactivated or its credential is revoked")
