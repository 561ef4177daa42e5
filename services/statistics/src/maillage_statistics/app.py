"""Composition root: the only place where the statistics service is wired together."""

from __future__ import annotations

from fastapi import FastAPI

import maillage_statistics
from maillage_common.service import create_service_app
from maillage_statistics import api, handlers
from maillage_statistics.api.indicators import parameters
from maillage_statistics.metrics import indicator_metrics
from maillage_statistics.settings import StatisticsSettings

# Statistics publishes nothing: it only folds every other service's events.
PUBLISHED_EVENTS: tuple[()] = ()


def create_app(settings: StatisticsSettings | None = None) -> FastAPI:
    settings = settings or StatisticsSettings.from_environment()
    return create_service_app(
        settings,
        title="Maillage statistics",
        description=(maillage_statistics.__doc__ or "").strip(),
        routers=api.routers(),
        published=PUBLISHED_EVENTS,
        consumers=handlers.consumers(settings.consumer_group),
        background=[indicator_metrics(parameters(settings), settings.metrics_cache_seconds)],
    )
