"""`create_service_app`: what every service's `create_app()` composes.

The service's `app.create_app` stays the composition root: it passes its settings, its
routers, the events it publishes and its consumers; this function wires the chassis
(logging, problems, metrics, health, auth, runtime lifespan) the same way everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from google.protobuf.message import Message

from maillage_common.bus.consumer import EventConsumer
from maillage_common.http.health import router as health_router
from maillage_common.http.problems import install_problem_handlers
from maillage_common.observability.logging import configure_logging
from maillage_common.observability.metrics import install_http_metrics
from maillage_common.observability.tracing import continue_trace, set_current_traceparent
from maillage_common.runtime import Runtime, run_runtime
from maillage_common.settings import ServiceSettings

BackgroundWork = Callable[[Runtime], AbstractAsyncContextManager[None]]
"""A service's own long-running work (timers, projections), started after the chassis."""


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    published: Sequence[type[Message]] = (),
    consumers: Sequence[EventConsumer] = (),
    background: Sequence[BackgroundWork] = (),
    version: str = "0.1.0",
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            service=settings.service_name, level=settings.log_level, json=settings.log_json
        )
        async with run_runtime(settings, published=published, consumers=consumers) as runtime:
            app.state.runtime = runtime
            app.state.token_verifier = runtime.token_verifier
            async with _background(runtime, background):
                yield

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    install_problem_handlers(app)
    install_http_metrics(app)
    app.middleware("http")(_request_context)
    app.include_router(health_router)
    for router in routers:
        app.include_router(router)
    return app


@asynccontextmanager
async def _background(runtime: Runtime, work: Sequence[BackgroundWork]) -> AsyncIterator[None]:
    if not work:
        yield
        return
    first, *rest = work
    async with first(runtime), _background(runtime, rest):
        yield


async def _request_context(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    set_current_traceparent(continue_trace(request.headers.get("traceparent")))
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await call_next(request)
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    response.headers["X-Request-ID"] = request_id
    return response
