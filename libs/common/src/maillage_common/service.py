"""`create_service_app`: what every service's `create_app()` composes.

The service's `app.create_app` stays the composition root: it passes its settings, its
routers, the events it publishes and its consumers; this function wires the chassis
(logging, problems, metrics, health, auth, runtime lifespan) the same way everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from google.protobuf.message import Message as ProtobufMessage
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maillage_common.bus.consumer import EventConsumer
from maillage_common.http.health import router as health_router
from maillage_common.http.problems import install_problem_handlers
from maillage_common.observability.logging import configure_logging
from maillage_common.observability.metrics import install_http_metrics
from maillage_common.observability.tracing import continue_trace, set_current_traceparent
from maillage_common.runtime import Runtime, run_runtime, startup_objects_frozen
from maillage_common.settings import ServiceSettings

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
BackgroundWork = Callable[[Runtime], AbstractAsyncContextManager[None]]
"""A service's own long-running work (timers, projections), started after the chassis."""


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    published: Sequence[type[ProtobufMessage]] = (),
    consumers: Sequence[EventConsumer] = (),
    background: Sequence[BackgroundWork] = (),
    exception_handlers: Mapping[type[Exception], ExceptionHandler] | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    """Wire the chassis around a service's routers, events, consumers and background work.

    `exception_handlers` maps a service's own domain errors to problem responses.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            service=settings.service_name, level=settings.log_level, json=settings.log_json
        )
        async with run_runtime(settings, published=published, consumers=consumers) as runtime:
            app.state.runtime = runtime
            app.state.token_verifier = runtime.token_verifier
            async with _background(runtime, background):
                with startup_objects_frozen():  # last: once everything has started
                    yield

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    install_problem_handlers(app)
    for error_type, handler in (exception_handlers or {}).items():
        app.add_exception_handler(error_type, handler)
    install_http_metrics(app)
    app.add_middleware(RequestContextMiddleware)
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


class RequestContextMiddleware:
    """Binds a request id and the W3C trace context for logs and recorded events."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        set_current_traceparent(continue_trace(headers.get("traceparent")))
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, with_request_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
