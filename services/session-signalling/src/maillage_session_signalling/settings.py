from __future__ import annotations

import secrets
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from maillage_common.settings import ServiceSettings, service_config


class SessionSignallingSettings(ServiceSettings):
    """Settings of session-signalling (env prefix `SIGNALLING_`)."""

    model_config = service_config("SIGNALLING_")

    service_name: str = Field(
        default="session-signalling", validation_alias=AliasChoices("SERVICE_NAME")
    )
    # Every replica must share it (set SIGNALLING_JOIN_TOKEN_SECRET); the random default only
    # suits a single process in development.
    join_token_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32))
    )

    @field_validator("join_token_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        # RFC 7518 §3.2: an HS256 key needs at least 256 bits.
        if len(secret.get_secret_value()) < 32:
            raise ValueError("SIGNALLING_JOIN_TOKEN_SECRET needs at least 32 characters")
        return secret

    join_token_max_ttl_seconds: int = 4 * 3600
    grace_seconds: int = Field(default=15 * 60, description="after the end: tokens, TURN")
    noshow_grace_seconds: int = Field(default=10 * 60, description="after the start")
    noshow_scan_interval_seconds: float = 15.0
    rejoin_window_seconds: float = 60.0
    join_timeout_seconds: float = 10.0

    # Plain ICE server URLs (stun:…) given to everyone; TURN URLs get REST credentials.
    ice_servers: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretStr = SecretStr("")
    turn_ttl_seconds: int = 3600

    # False for signalling-only replicas: booking events are then left to the other replicas
    # (one consumer group either way, so nothing is missed while one replica consumes).
    consume_events: bool = True
    # "postgres": replicas relay to each other through LISTEN/NOTIFY; "none": one replica.
    replica_relay: Literal["postgres", "none"] = "postgres"

    max_message_bytes: int = 64 * 1024
    flood_rate_per_second: float = 50.0
    flood_burst: float = 200.0
    max_participants: int = 4
    # Specialists and interpreters invited into one session at a time (within the 4 above).
    max_invitees: int = 2
