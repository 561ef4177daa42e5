from __future__ import annotations

from pydantic import AliasChoices, Field

from maillage_common.settings import ServiceSettings, service_config


class TelemetrySettings(ServiceSettings):
    model_config = service_config("TELEMETRY_")

    service_name: str = Field(default="telemetry", validation_alias=AliasChoices("SERVICE_NAME"))
