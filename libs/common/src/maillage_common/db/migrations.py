"""Alembic, one migration history per service, living in the service's own schema.

A service's `db/migrations/env.py` calls `run_migrations(metadata)`; its
`db/migrate.py` calls `upgrade(settings, Path(__file__).parent / "migrations")`, which
`make up` and deployments run as a one-off job before starting the service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from maillage_common.settings import ServiceSettings

_FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s"


def alembic_config(settings: ServiceSettings, script_location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("file_template", _FILE_TEMPLATE)
    config.attributes["settings"] = settings
    return config


def upgrade(settings: ServiceSettings, script_location: Path, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings, script_location), revision)


def run_migrations(target_metadata: MetaData | list[MetaData]) -> None:
    """Body of every service's env.py (online mode only: migrations need the database)."""
    settings: ServiceSettings = context.config.attributes["settings"]
    asyncio.run(_run_async(settings, target_metadata))


async def _run_async(settings: ServiceSettings, target_metadata: MetaData | list[MetaData]) -> None:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.owned_schema}"'))
            await connection.execute(text(f'SET search_path TO "{settings.owned_schema}", public'))
            await connection.commit()
            await connection.run_sync(_run_sync, settings.owned_schema, target_metadata)
    finally:
        await engine.dispose()


def _run_sync(
    connection: Connection, schema: str, target_metadata: MetaData | list[MetaData]
) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
