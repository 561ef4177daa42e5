from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from maillage_common.db import create_engine
from maillage_common.settings import ServiceSettings

from .bus_harness import harness_settings, prepare_schema

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus_settings(
    database_url: str, kafka_bootstrap_servers: str, database_schema: str
) -> ServiceSettings:
    settings = harness_settings(
        database_url=database_url, bootstrap=kafka_bootstrap_servers, schema=database_schema
    )
    await prepare_schema(settings)
    return settings


@pytest.fixture
async def engine(bus_settings: ServiceSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(bus_settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def group() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 60.0, every: float = 0.1
) -> None:
    """Poll `condition` until true; fail the test with a clear message on timeout."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(every)


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())
