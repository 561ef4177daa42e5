from __future__ import annotations

from pydantic import AliasChoices, Field

from maillage_common.settings import ServiceSettings, service_config


class BookingSettings(ServiceSettings):
    model_config = service_config("BOOKING_")

    service_name: str = Field(default="booking", validation_alias=AliasChoices("SERVICE_NAME"))
