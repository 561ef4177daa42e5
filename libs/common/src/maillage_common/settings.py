"""Settings shared by every service, read from the environment (never from the repo).

Shared infrastructure uses the conventional names (`DATABASE_URL`,
`KAFKA_BOOTSTRAP_SERVERS`, `AUTH_*`); a service's own settings use its prefix
(`BOOKING_HOLD_TTL_SECONDS`…), set with `model_config = service_config("BOOKING_")`.
"""

from __future__ import annotations

from typing import Self

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def service_config(env_prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=env_prefix, extra="ignore", frozen=True)


def _shared(name: str) -> AliasChoices:
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    """Everything the chassis needs to run one service process."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = Field(validation_alias=_shared("SERVICE_NAME"))
    database_url: str = Field(validation_alias=_shared("DATABASE_URL"))
    database_schema: str = Field(
        default="", description="PostgreSQL schema owned by the service (default: its name)"
    )
    database_pool_size: int = 10
    database_connect_timeout_seconds: float = 2.0
    database_pool_timeout_seconds: float = Field(
        default=10.0, description="How long a request may wait for a pooled connection"
    )
    database_statement_timeout_seconds: float = 10.0
    database_session_settings: dict[str, str] = Field(
        default_factory=dict,
        description="PostgreSQL settings for every pooled connection (e.g. plan_cache_mode)",
    )

    kafka_bootstrap_servers: str = Field(validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS"))
    kafka_enable_idempotence: bool = Field(
        default=False,
        validation_alias=_shared("KAFKA_ENABLE_IDEMPOTENCE"),
        description="Turn on with Apache Kafka; the embedded broker has no idempotent producer",
    )
    kafka_topic_partitions: int = Field(
        default=6, validation_alias=_shared("KAFKA_TOPIC_PARTITIONS")
    )
    kafka_replication_factor: int = Field(
        default=1, validation_alias=_shared("KAFKA_REPLICATION_FACTOR")
    )
    kafka_max_message_bytes: int = Field(
        default=1_000_000, validation_alias=_shared("KAFKA_MAX_MESSAGE_BYTES")
    )

    outbox_batch_size: int = 200
    outbox_poll_interval_seconds: float = 1.0
    outbox_max_backoff_seconds: float = 10.0
    consumer_group_prefix: str = Field(
        default="",
        description="Prefixed to consumer group names: separates instances sharing a broker",
    )
    consumer_max_attempts: int = 3
    consumer_handler_timeout_seconds: float = 30.0
    consumer_batch_size: int = 100
    consumer_batch_budget_seconds: float = 60.0
    consumer_fetch_max_wait_ms: int = Field(
        default=100,
        description="Bounds the broker's long poll: the embedded broker does not always wake it",
    )

    auth_jwks_url: str = Field(validation_alias=_shared("AUTH_JWKS_URL"))
    auth_issuer: str = Field(validation_alias=_shared("AUTH_ISSUER"))
    auth_audience: str = Field(default="maillage", validation_alias=_shared("AUTH_AUDIENCE"))

    log_level: str = Field(default="INFO", validation_alias=_shared("LOG_LEVEL"))
    log_json: bool = Field(default=True, validation_alias=_shared("LOG_JSON"))

    @classmethod
    def from_environment(cls) -> Self:
        """Read every setting from the environment (missing required ones fail loudly)."""
        return cls()

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, url: str) -> str:
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        raise ValueError("DATABASE_URL must be a postgresql:// URL")

    @property
    def owned_schema(self) -> str:
        return self.database_schema or self.service_name.replace("-", "_")

    @property
    def event_source(self) -> str:
        return f"maillage/{self.service_name}"
