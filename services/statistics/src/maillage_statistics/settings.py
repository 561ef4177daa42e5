"""The statistics service's settings (env prefix `STATISTICS_`)."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from maillage_common.settings import ServiceSettings, service_config


class StatisticsSettings(ServiceSettings):
    """Indicator parameters, metrics cache, rebuild tuning."""

    model_config = service_config("STATISTICS_")

    service_name: str = Field(default="statistics", validation_alias=AliasChoices("SERVICE_NAME"))
    database_session_settings: dict[str, str] = Field(
        # Every indicator's plan depends on its period and filters (which rollups a period
        # reads, how selective a département is): a plan cached for one period is wrong for
        # the next. Generic plans made the département summary 3.6x slower on PostgreSQL 15.
        default_factory=lambda: {"plan_cache_mode": "force_custom_plan"},
        description="PostgreSQL settings for every pooled connection",
    )
    usage_regular_sessions_per_month: int = Field(
        default=4, ge=1, description="k: sessions a site needs in each month to be in regular use"
    )
    usage_regular_months: int = Field(
        default=3, ge=1, description="m: the last m complete months the usage rule looks at"
    )
    kiosk_online_seconds: int = Field(
        default=300, ge=1, description="a kiosk heard from within this delay is online"
    )
    general_medicine_specialty: str = Field(
        default="SM54", description="TRE_R38 code of general medicine (the bilan's headline)"
    )
    metrics_cache_seconds: float = Field(
        default=15.0, gt=0, description="how long indicator metrics are served from cache"
    )
    consumer_group: str = Field(
        default="statistics-projections",
        description="consumer group (and inbox name) of the live projections; change it "
        "together with the schema when cutting over to a rebuilt schema",
    )
    rebuild_batch_size: int = Field(default=5000, ge=1)
    rebuild_workers: int = Field(
        default=2,
        ge=1,
        description="processes that read and fold the rebuild's partitions side by side "
        "(decoding is CPU-bound Python: about one per core PostgreSQL can spare)",
    )
    rebuild_work_mem: str = Field(
        default="256MB",
        pattern=r"^[1-9][0-9]*(kB|MB|GB)$",
        description="PostgreSQL work_mem of each of the rebuild's two rollup refresh connections",
    )
