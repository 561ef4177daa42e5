"""Every service boots on the chassis against the real broker and PostgreSQL."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from maillage_common.auth import undeclared_routes
from maillage_common.auth.keys import DevSigningKey
from maillage_devstack.pytest_plugin import ServiceApp
from maillage_devstack.service_testing import service_settings

SERVICES = {
    "directory": "maillage_directory",
    "booking": "maillage_booking",
    "session-signalling": "maillage_session_signalling",
    "telemetry": "maillage_telemetry",
    "statistics": "maillage_statistics",
}


@pytest.mark.parametrize("package", SERVICES.values(), ids=SERVICES.keys())
def test_every_route_declares_who_may_call_it(package: str, tmp_path: Path) -> None:
    settings = service_settings(
        package,
        database_url="postgresql://unused@127.0.0.1:1/unused",
        kafka_bootstrap_servers="127.0.0.1:1",
        schema="unused",
        signing_key=DevSigningKey(tmp_path / "k", tmp_path / "jwks.json"),
        issuer="unused",
    )
    app = importlib.import_module(f"{package}.app").create_app(settings)
    assert undeclared_routes(app) == []


@pytest.mark.integration
@pytest.mark.parametrize("package", SERVICES.values(), ids=SERVICES.keys())
async def test_service_migrates_starts_and_becomes_ready(
    package: str, service_app: ServiceApp
) -> None:
    async with service_app(package) as (app, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        readiness = (await client.get("/readyz")).json()
        assert readiness == {"status": "ready", "checks": {"database": True, "broker": True}}
        metrics = (await client.get("/metrics")).text
        assert 'maillage_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
        assert "maillage_outbox_backlog_events" in metrics
        openapi = (await client.get("/openapi.json")).json()
        assert openapi["info"]["title"] == app.title
        missing = await client.get("/no-such-route")
        assert missing.headers["content-type"] == "application/problem+json"
