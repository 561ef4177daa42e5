"""Prometheus metrics of the chassis (per process; scale by replicas, scrape each).

Names follow `maillage_<thing>_<unit>`; labels stay few and never carry patient data.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class HttpMetricsMiddleware:
    """RED metrics per route template, as plain ASGI (no per-request task or body copy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_status)
        finally:
            # The router records the matched route in the scope; its template keeps labels few.
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_DURATION.labels(scope["method"], route).observe(time.perf_counter() - started)


def install_http_metrics(app: FastAPI, registry: CollectorRegistry = REGISTRY) -> None:
    app.add_middleware(HttpMetricsMiddleware)

    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # Scraped by Prometheus inside the cluster; network policies keep it off the internet.
    app.add_api_route("/metrics", metrics, include_in_schema=False, dependencies=[public()])
