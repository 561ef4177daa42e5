from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from maillage_common.settings import ServiceSettings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def naming_metadata() -> MetaData:
    """A MetaData whose constraints get stable names, so migrations can refer to them."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(settings: ServiceSettings, *, pool_size: int | None = None) -> AsyncEngine:
    """An engine whose connections live in the service's own schema.

    `public` stays on the search path for extensions (btree_gist) that live there.
    """
    return _create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=settings.database_pool_timeout_seconds,
        # No pre-ping: it costs a round trip per checkout. A connection broken by an outage
        # is invalidated on its first error (that request answers 503), the pool refills.
        connect_args={
            "timeout": settings.database_connect_timeout_seconds,
            "command_timeout": settings.database_statement_timeout_seconds,
            "server_settings": {
                **settings.database_session_settings,
                "search_path": f"{settings.owned_schema},public",
                "application_name": settings.service_name,
            },
        },
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction, for what SQLAlchemy does not
    expose (COPY): statements sent on it are part of the same transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection
