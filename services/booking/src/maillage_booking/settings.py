from __future__ import annotations

from pydantic import AliasChoices, Field

from maillage_common.settings import ServiceSettings, service_config


class BookingSettings(ServiceSettings):
    """Booking's own knobs (env prefix BOOKING_)."""

    model_config = service_config("BOOKING_")

    service_name: str = Field(default="booking", validation_alias=AliasChoices("SERVICE_NAME"))
    hold_ttl_seconds: int = 300
    # Fernet key (urlsafe base64, 32 bytes) protecting patient identity at rest.
    patient_key: str = ""
    ondemand_widen_after_seconds: float = 60.0
    ondemand_expire_after_seconds: float = 600.0
    ondemand_offers_per_tier: int = 5
    ondemand_slot_minutes: int = 15
    sweep_interval_seconds: float = 1.0
    attachment_max_bytes: int = 5_000_000
    # Where the filesystem blob store keeps attachment bytes (PostgreSQL keeps their metadata).
    attachment_directory: str = ".maillage/booking-attachments"
    cancel_notice_minutes: int = 0
