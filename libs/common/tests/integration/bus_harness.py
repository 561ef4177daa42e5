"""A minimal service on the real bus: records appointments, applies them to `applied_effect`.

Used by the bus tests in-process and, for the crash drill, as a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from maillage.booking.v1 import events_pb2
from maillage_common.bus import EventConsumer
from maillage_common.db import UnitOfWork, create_messaging_tables
from maillage_common.events import Event
from maillage_common.runtime import run_runtime
from maillage_common.settings import ServiceSettings

EFFECT_TABLE = """
CREATE TABLE applied_effect (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    subject text NOT NULL
)
"""


def harness_settings(
    *, database_url: str, bootstrap: str, schema: str, jwks_url: str = "file:///nonexistent"
) -> ServiceSettings:
    return ServiceSettings(
        SERVICE_NAME="bus-harness",
        DATABASE_URL=database_url,
        database_schema=schema,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_TOPIC_PARTITIONS=3,
        AUTH_JWKS_URL=jwks_url,
        AUTH_ISSUER="maillage-test",
        outbox_poll_interval_seconds=0.2,
        outbox_max_backoff_seconds=1.0,
        LOG_JSON=False,
    )


async def prepare_schema(settings: ServiceSettings) -> None:
    engine = create_async_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text(f'SET search_path TO "{settings.owned_schema}", public'))
        await connection.run_sync(create_messaging_tables)
        await connection.execute(text(EFFECT_TABLE))
    await engine.dispose()


def applying_consumer(group: str, *, delay_seconds: float = 0.0) -> EventConsumer:
    async def apply(event: Event[Any], uow: UnitOfWork) -> None:
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        await uow.session.execute(
            text("INSERT INTO applied_effect (event_id, subject) VALUES (:id, :subject)"),
            {"id": event.id, "subject": event.subject},
        )

    return EventConsumer(group, handlers={events_pb2.AppointmentBooked: apply})


def appointment_booked(appointment_id: str) -> events_pb2.AppointmentBooked:
    message = events_pb2.AppointmentBooked()
    message.appointment_id = appointment_id
    message.site_id = "site-" + appointment_id[:8]
    return message


async def record_appointments(
    settings: ServiceSettings, subjects: list[str], sessions: Any
) -> list[uuid.UUID]:
    """Record one AppointmentBooked per subject, one transaction each, in order."""
    recorded = []
    for subject in subjects:
        async with UnitOfWork(sessions) as uow:
            recorded.append(await uow.record(appointment_booked(subject), subject=subject))
            await uow.commit()
    return recorded


async def _serve(settings: ServiceSettings, group: str, delay_seconds: float) -> None:
    consumer = applying_consumer(group, delay_seconds=delay_seconds)
    async with run_runtime(settings, published=[], consumers=[consumer]):
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    arguments = parser.parse_args()
    settings = harness_settings(
        database_url=arguments.database_url, bootstrap=arguments.bootstrap, schema=arguments.schema
    )
    asyncio.run(_serve(settings, arguments.group, arguments.delay))


if __name__ == "__main__":
    main()
