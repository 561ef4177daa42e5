from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, BaseModel, Field

from maillage_common.settings import ServiceSettings, service_config
from maillage_telemetry.domain.alerts import (
    DEFAULT_THRESHOLDS,
    Direction,
    Severity,
    ThresholdRule,
)


class ThresholdSetting(BaseModel):
    """One configurable alert threshold (TELEMETRY_THRESHOLDS is a JSON list of these)."""

    loinc_code: str
    direction: Direction
    raise_at: float
    clear_at: float
    severity: Severity = Severity.CRITICAL

    def rule(self) -> ThresholdRule:
        return ThresholdRule(
            self.loinc_code, self.direction, self.raise_at, self.clear_at, self.severity
        )


def _default_thresholds() -> list[ThresholdSetting]:
    return [
        ThresholdSetting(
            loinc_code=r.loinc_code,
            direction=r.direction,
            raise_at=r.raise_at,
            clear_at=r.clear_at,
            severity=r.severity,
        )
        for r in DEFAULT_THRESHOLDS
    ]


class TelemetrySettings(ServiceSettings):
    """Telemetry settings (env prefix TELEMETRY_)."""

    model_config = service_config("TELEMETRY_")

    service_name: str = Field(default="telemetry", validation_alias=AliasChoices("SERVICE_NAME"))

    max_batch_items: int = Field(default=1000, ge=1, le=5000)
    retention_days: int = Field(default=365, ge=1)
    future_tolerance_seconds: float = Field(default=300, ge=0)
    # A kiosk silent for longer than this is offline (heartbeats come every ~30 s).
    offline_after_seconds: float = Field(default=180, gt=0)
    offline_check_interval_seconds: float = Field(default=15, gt=0)
    thresholds: list[ThresholdSetting] = Field(default_factory=_default_thresholds)
    history_limit: int = Field(default=500, ge=1)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)

    @property
    def future_tolerance(self) -> timedelta:
        return timedelta(seconds=self.future_tolerance_seconds)

    @property
    def offline_after(self) -> timedelta:
        return timedelta(seconds=self.offline_after_seconds)

    def threshold_rules(self) -> list[ThresholdRule]:
        return [setting.rule() for setting in self.thresholds]
