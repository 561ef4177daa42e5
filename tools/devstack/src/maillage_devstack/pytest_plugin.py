"""Shared pytest fixtures: one broker and one PostgreSQL per test session, isolated schemas, tokens.

Registered through the `pytest11` entry point, so every test in the workspace can ask for
these fixtures. Everything is lazy: a unit-test run that asks for none starts nothing.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from maillage_devstack.infra import (
    EmbeddedKafka,
    EmbeddedPostgres,
    Infrastructure,
    provide_infrastructure,
    run_psql,
)

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI

    from maillage_common.auth.keys import DevSigningKey

TEST_ISSUER = "maillage-test"
TEST_AUDIENCE = "maillage"
TEST_DATABASE = "maillage_test"


class Mint(Protocol):
    """Mints a token signed with the session's test key (issuer maillage-test)."""

    def __call__(
        self,
        role: str,
        subject: str = "test-user",
        site_id: str | None = None,
        rpps: str | None = None,
        ttl_seconds: int = 3600,
    ) -> str: ...


def pytest_configure(config: pytest.Config) -> None:
    # Also registered in the root config; repeated here for runs from another rootdir.
    config.addinivalue_line("markers", "integration: talks to the real broker and PostgreSQL")


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    """Broker and PostgreSQL for the whole session: external if configured, embedded otherwise."""
    # Not tmp_path_factory: pytest keeps its base directory 0700, which the unprivileged
    # PostgreSQL user (when tests run as root) could not traverse.
    with (
        tempfile.TemporaryDirectory(prefix="maillage-test-", ignore_cleanup_errors=True) as root,
        provide_infrastructure(Path(root), durable=False, allow_containers=True) as infra,
    ):
        yield infra


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(infrastructure: Infrastructure) -> str:
    return infrastructure.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def database_url(infrastructure: Infrastructure) -> str:
    """The test database (`maillage_test` on the embedded server), with btree_gist in public."""
    url = infrastructure.ensure_database(TEST_DATABASE)
    run_psql(url, "CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;")
    return url


@pytest.fixture
def database_schema(database_url: str) -> Iterator[str]:
    """A fresh, uniquely named schema in the test database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    run_psql(database_url, f'CREATE SCHEMA "{name}";')
    yield name
    run_psql(database_url, f'DROP SCHEMA IF EXISTS "{name}" CASCADE;')


@pytest.fixture
def embedded_kafka(infrastructure: Infrastructure) -> Iterator[EmbeddedKafka]:
    """The session's embedded broker, for tests that stop, kill or restart it.

    Restarted afterwards if a test left it down, so later tests find a broker (with
    empty storage: topics are recreated by whoever needs them).
    """
    if infrastructure.kafka is None:
        pytest.skip("needs the embedded broker; KAFKA_BOOTSTRAP_SERVERS points at an external one")
    kafka = infrastructure.kafka
    yield kafka
    if not kafka.running:
        kafka.start()


@pytest.fixture
def embedded_postgres(infrastructure: Infrastructure) -> Iterator[EmbeddedPostgres]:
    """The session's embedded PostgreSQL, for crash drills; restarted afterwards if down."""
    if infrastructure.postgres is None:
        pytest.skip("needs the embedded PostgreSQL; DATABASE_URL points at an external one")
    postgres = infrastructure.postgres
    yield postgres
    if not postgres.running:
        postgres.start()


@pytest.fixture(scope="session")
def dev_signing_key(tmp_path_factory: pytest.TempPathFactory) -> DevSigningKey:
    """A fresh key pair for the session; point AUTH_JWKS_URL at its `jwks_url`."""
    from maillage_common.auth.keys import ensure_dev_signing_key  # FastAPI-heavy: lazy

    return ensure_dev_signing_key(tmp_path_factory.mktemp("dev-keys"))


@pytest.fixture(scope="session")
def mint(dev_signing_key: DevSigningKey) -> Mint:
    """`mint(role, subject=…, site_id=…, rpps=…, ttl_seconds=…)` -> a bearer token."""
    from maillage_common.auth import Role
    from maillage_common.auth.keys import mint_token

    def mint_for(
        role: str,
        subject: str = "test-user",
        site_id: str | None = None,
        rpps: str | None = None,
        ttl_seconds: int = 3600,
    ) -> str:
        return mint_token(
            private_jwk_path=dev_signing_key.private_jwk_path,
            role=Role(role),
            subject=subject,
            issuer=TEST_ISSUER,
            audience=TEST_AUDIENCE,
            site_id=site_id,
            rpps=rpps,
            ttl_seconds=ttl_seconds,
        )

    return mint_for


class ServiceApp(Protocol):
    """`service_app("maillage_booking", **setting_overrides)`: an async context manager
    yielding (app, httpx client) for the service running on the session's infrastructure,
    in this test's own schema."""

    def __call__(
        self, package: str, *, wait_ready: bool = True, **overrides: Any
    ) -> AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]: ...


@pytest.fixture
def service_app(
    database_url: str,
    kafka_bootstrap_servers: str,
    database_schema: str,
    dev_signing_key: DevSigningKey,
) -> ServiceApp:
    from maillage_devstack.service_testing import running_service, service_settings

    def start(
        package: str, *, wait_ready: bool = True, **overrides: Any
    ) -> AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]:
        settings = service_settings(
            package,
            database_url=database_url,
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            schema=database_schema,
            signing_key=dev_signing_key,
            issuer=TEST_ISSUER,
            **overrides,
        )
        return running_service(package, settings, wait_ready=wait_ready)

    return start
