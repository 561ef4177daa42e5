from __future__ import annotations

from pydantic import AliasChoices, Field

from maillage_common.settings import ServiceSettings, service_config


class StatisticsSettings(ServiceSettings):
    model_config = service_config("STATISTICS_")

    service_name: str = Field(default="statistics", validation_alias=AliasChoices("SERVICE_NAME"))
