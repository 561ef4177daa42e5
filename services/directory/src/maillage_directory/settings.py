from __future__ import annotations

from pydantic import AliasChoices, Field

from maillage_common.settings import ServiceSettings, service_config


class DirectorySettings(ServiceSettings):
    model_config = service_config("DIRECTORY_")

    service_name: str = Field(default="directory", validation_alias=AliasChoices("SERVICE_NAME"))
