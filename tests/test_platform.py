"""Every service boots on the chassis against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from maillage_common.auth import undeclared_routes
from maillage_common.auth.keys import DevSigningKey
from maillage_common.db.migrations import upgrade
from maillage_common.settings import ServiceSettings

SERVICES = {
    "directory": "maillage_directory",
    "booking": "maillage_booking",
    "session-signalling": "maillage_session_signalling",
    "telemetry": "maillage_telemetry",
    "statistics": "maillage_statistics",
}


def service_settings(
    package: str, *, database_url: str, bootstrap: str, schema: str, key: DevSigningKey
) -> ServiceSettings:
    settings_module = importlib.import_module(f"{package}.settings")
    settings_class = next(
        value
        for name, value in vars(settings_module).items()
        if name.endswith("Settings") and name != "ServiceSettings"
    )
    settings: ServiceSettings = settings_class(
        DATABASE_URL=database_url,
        database_schema=schema,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        AUTH_JWKS_URL=key.jwks_url,
        AUTH_ISSUER="maillage-test",
        LOG_JSON=False,
    )
    return settings


@pytest.mark.parametrize("package", SERVICES.values(), ids=SERVICES.keys())
def test_every_route_declares_who_may_call_it(package: str, tmp_path: Path) -> None:
    app_module = importlib.import_module(f"{package}.app")
    settings = service_settings(
        package,
        database_url="postgresql://unused@127.0.0.1:1/unused",
        bootstrap="127.0.0.1:1",
        schema="unused",
        key=DevSigningKey(tmp_path / "k", tmp_path / "jwks.json"),
    )
    assert undeclared_routes(app_module.create_app(settings)) == []


@pytest.mark.integration
@pytest.mark.parametrize("package", SERVICES.values(), ids=SERVICES.keys())
async def test_service_migrates_starts_and_becomes_ready(
    package: str,
    database_url: str,
    kafka_bootstrap_servers: str,
    database_schema: str,
    dev_signing_key: DevSigningKey,
) -> None:
    settings = service_settings(
        package,
        database_url=database_url,
        bootstrap=kafka_bootstrap_servers,
        schema=database_schema,
        key=dev_signing_key,
    )
    migrations = Path(importlib.import_module(f"{package}.db.migrate").MIGRATIONS)
    await asyncio.to_thread(upgrade, settings, migrations)
    app = importlib.import_module(f"{package}.app").create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://service"
        ) as client,
    ):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        readiness = await _ready(client)
        assert readiness == {"status": "ready", "checks": {"database": True, "broker": True}}
        metrics = (await client.get("/metrics")).text
        assert 'maillage_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
        assert "maillage_outbox_backlog_events" in metrics
        openapi = (await client.get("/openapi.json")).json()
        assert openapi["info"]["title"] == f"Maillage {settings.service_name}"
        missing = await client.get("/no-such-route")
        assert missing.headers["content-type"] == "application/problem+json"


async def _ready(client: httpx.AsyncClient) -> dict[str, object]:
    async with asyncio.timeout(60):
        while True:
            response = await client.get("/readyz")
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
            await asyncio.sleep(0.2)
