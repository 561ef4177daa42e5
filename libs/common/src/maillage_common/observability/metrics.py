"""Prometheus metrics of the chassis (per process; scale by replicas, scrape each).

Names follow `maillage_<thing>_<unit>`; labels stay few and never carry patient data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from maillage_common.auth.routes import public

HTTP_REQUESTS = Counter(
    "maillage_http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "maillage_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter(
    "maillage_events_published_total", "Events published from the outbox", ["topic"]
)
EVENTS_CONSUMED = Counter(
    "maillage_events_consumed_total",
    "Events consumed, by outcome (applied, duplicate, ignored, dead_lettered, retried)",
    ["consumer", "topic", "outcome"],
)
OUTBOX_BACKLOG = Gauge("maillage_outbox_backlog_events", "Events waiting in the outbox")
OUTBOX_OLDEST_AGE = Gauge(
    "maillage_outbox_oldest_age_seconds", "Age of the oldest event waiting in the outbox"
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "maillage_outbox_publish_failures_total", "Relay publish attempts that failed (broker away)"
)
CONSUMER_LAG = Gauge(
    "maillage_consumer_lag_messages",
    "Messages behind the partition's high watermark",
    ["consumer", "topic", "partition"],
)


def _route_template(request: Request) -> str:
    # The router records the matched route in the scope; its template keeps labels few.
    return str(getattr(request.scope.get("route"), "path", "unmatched"))


def install_http_metrics(app: FastAPI, registry: CollectorRegistry = REGISTRY) -> None:
    @app.middleware("http")
    async def record_red_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_template(request)
            HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
            HTTP_DURATION.labels(request.method, route).observe(time.perf_counter() - started)

    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # Scraped by Prometheus inside the cluster; network policies keep it off the internet.
    app.add_api_route("/metrics", metrics, include_in_schema=False, dependencies=[public()])
