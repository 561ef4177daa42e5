from __future__ import annotations

from pydantic import AliasChoices, Field

from maillage_common.settings import ServiceSettings, service_config


class SessionSignallingSettings(ServiceSettings):
    model_config = service_config("SIGNALLING_")

    service_name: str = Field(
        default="session-signalling", validation_alias=AliasChoices("SERVICE_NAME")
    )
