"""Boot a real service in-process for tests: migrate its schema, run its lifespan, call it.

The service talks to the session's real broker and PostgreSQL; the test talks to it over
httpx's ASGI transport (no port). Used through the `service_app` fixture.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from maillage_common.auth.keys import DevSigningKey
from maillage_common.db.migrations import upgrade
from maillage_common.settings import ServiceSettings

_READY_TIMEOUT_SECONDS = 60.0

T = TypeVar("T")


def settings_class(package: str) -> type[ServiceSettings]:
    """The service's `<Name>Settings` class, found in `<package>.settings`."""
    module = importlib.import_module(f"{package}.settings")
    for name, value in vars(module).items():
        if (
            name.endswith("Settings")
            and isinstance(value, type)
            and issubclass(value, ServiceSettings)
            and value is not ServiceSettings
        ):
            return value
    raise LookupError(f"{package}.settings defines no ServiceSettings subclass")


def service_settings(
    package: str,
    *,
    database_url: str,
    kafka_bootstrap_servers: str,
    schema: str,
    signing_key: DevSigningKey,
    issuer: str,
    **overrides: Any,
) -> ServiceSettings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "database_schema": schema,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "AUTH_JWKS_URL": signing_key.jwks_url,
        "AUTH_ISSUER": issuer,
        "LOG_JSON": False,
        "outbox_poll_interval_seconds": 0.2,
        # Every test runs its own instance on the shared broker: its own consumer groups.
        "consumer_group_prefix": f"{schema}.",
        **overrides,
    }
    return settings_class(package)(**values)


async def migrate(package: str, settings: ServiceSettings) -> None:
    migrations = Path(importlib.import_module(f"{package}.db.migrate").MIGRATIONS)
    # Alembic's env.py runs its own event loop: keep it off the test's loop.
    await asyncio.to_thread(upgrade, settings, migrations)


@asynccontextmanager
async def running_service(
    package: str, settings: ServiceSettings, *, wait_ready: bool = True
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Migrate, start the app's lifespan, optionally wait for /readyz, yield (app, client)."""
    await migrate(package, settings)
    app: FastAPI = importlib.import_module(f"{package}.app").create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://service"
        ) as client,
    ):
        if wait_ready:
            await wait_until_ready(client)
        yield app, client


async def wait_until_ready(client: httpx.AsyncClient) -> None:
    # Polling an HTTP probe: there is no event to wait on.
    async with asyncio.timeout(_READY_TIMEOUT_SECONDS):
        while (await client.get("/readyz")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, *, seconds: float = 60.0
) -> T:
    """Poll `probe` until it returns something: the effect of an event has no other signal.

    Fails the test naming `what` after `seconds`.
    """
    try:
        async with asyncio.timeout(seconds):
            while True:
                found = await probe()
                if found is not None:
                    return found
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"never happened within {seconds:.0f} s: {what}") from None
