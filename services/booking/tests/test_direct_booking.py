"""The one-statement booking path: a remembered context never outlives a change of the read
model, the outbox row comes with the appointment only, and remembered tokens expire."""

from __future__ import annotations

import asyncio
import warnings
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from maillage_booking.db import direct_booking as direct
from maillage_booking.db.repositories import sqlstate
from maillage_booking.use_cases.common import retry_on_conflict

if TYPE_CHECKING:
    from conftest import World

PARIS = ZoneInfo("Europe/Paris")


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    day = datetime.now(PARIS).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


async def book(world: World, start: datetime) -> Any:
    return await world.client.post(
        "/appointments",
        json={"responder_id": world.responder_id, "start": start.isoformat()},
        headers=world.nurse(),
    )


@pytest.mark.integration
async def test_a_changed_schedule_is_seen_by_the_next_booking(world: World) -> None:
    await world.set_schedule()
    assert (await book(world, tomorrow_at(10))).status_code == 201  # context remembered
    afternoons = [{"weekday": d, "start": "14:00", "end": "18:00"} for d in range(7)]
    await world.set_schedule(weekly=afternoons, slot_minutes={"teleconsultation": 15})
    refused = await book(world, tomorrow_at(11))
    assert refused.status_code == 422, refused.text
    shorter = await book(world, tomorrow_at(15))
    assert shorter.status_code == 201, shorter.text
    assert datetime.fromisoformat(shorter.json()["end"]) == tomorrow_at(15, 15)
    # Widened again: what the remembered (afternoon) rules would refuse is booked.
    await world.set_schedule()
    assert (await book(world, tomorrow_at(9))).status_code == 201


@pytest.mark.integration
async def test_a_deactivated_responder_is_refused_at_once(world: World) -> None:
    await world.set_schedule()
    assert (await book(world, tomorrow_at(10))).status_code == 201  # context remembered
    retired = world.professional(world.responder_id, world.rpps, version=5, active=False)
    await world.publish((retired, world.responder_id))

    async def inactive() -> bool:
        active = await world.scalar(
            "SELECT active FROM responders WHERE id = :i", i=world.responder_id
        )
        return active is False

    await world.eventually(inactive)
    refused = await book(world, tomorrow_at(11))
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"


@pytest.mark.integration
async def test_the_outbox_row_comes_with_the_appointment_only(world: World) -> None:
    await world.set_schedule()
    first = await book(world, tomorrow_at(12))
    taken = await book(world, tomorrow_at(12))
    assert (first.status_code, taken.status_code) == (201, 409)
    appointment_id = first.json()["id"]
    assert first.json()["start"] == tomorrow_at(12).astimezone(ZoneInfo("UTC")).isoformat()
    events = await world.scalar(
        "SELECT string_agg(event_type, ',') FROM outbox_event WHERE event_key = :k",
        k=appointment_id,
    )
    relayed_or_pending = await world.scalar(
        "SELECT count(*) FROM appointments WHERE responder_id = :r AND blocking",
        r=world.responder_id,
    )
    # The relay may already have published (and deleted) the row: then it is on the topic.
    if events is None:
        found = await world.consume("booking.appointments", appointment_id, 1)
        events = ",".join(kind for kind, _ in found)
    assert events == "maillage.booking.v1.AppointmentBooked"
    assert relayed_or_pending == 1


class _Pooled:
    def __init__(self, error: BaseException) -> None:
        self.driver_connection = self
        self.error = error
        self.invalidated: BaseException | None = None

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        raise self.error


class _Connection:
    def __init__(self, pooled: _Pooled) -> None:
        self.pooled = pooled

    async def get_raw_connection(self) -> _Pooled:
        return self.pooled

    async def invalidate(self, error: BaseException) -> None:
        self.pooled.invalidated = error


async def _fail_with(error: BaseException) -> tuple[Exception, _Pooled]:
    pooled = _Pooled(error)
    with pytest.raises(DBAPIError) as raised:
        await direct._fetchrow(cast(AsyncConnection, _Connection(pooled)), "SELECT 1")
    return raised.value, pooled


async def test_driver_errors_come_out_as_sqlalchemy_errors() -> None:
    """Retries (by SQLSTATE) and the chassis's 503 work on the one-statement path too."""
    deadlock, pooled = await _fail_with(asyncpg.exceptions.DeadlockDetectedError("deadlock"))
    assert not isinstance(deadlock, OperationalError)
    assert sqlstate(cast(DBAPIError, deadlock)) == "40P01"
    assert pooled.invalidated is None

    shutdown, _ = await _fail_with(asyncpg.exceptions.AdminShutdownError("shutdown"))
    assert isinstance(shutdown, OperationalError)

    broken = asyncpg.exceptions.ConnectionDoesNotExistError("gone")
    lost, pooled = await _fail_with(broken)
    assert isinstance(lost, OperationalError)
    assert lost.connection_invalidated
    assert pooled.invalidated is broken


async def test_a_deadlocked_one_statement_booking_is_retried() -> None:
    attempts = 0

    async def once() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            pooled = _Pooled(asyncpg.exceptions.DeadlockDetectedError("deadlock"))
            await direct._fetchrow(cast(AsyncConnection, _Connection(pooled)), "SELECT 1")
        return "booked"

    assert await retry_on_conflict(once) == "booked"
    assert attempts == 2


@pytest.mark.integration
async def test_a_leased_connection_goes_back_to_the_pool_even_once_invalidated(
    world: World,
) -> None:
    """The statements check connections out of the pool itself: each is returned (or, once
    invalidated, replaced) exactly once, and runs in autocommit (no transaction left open)."""
    engine = world.app.state.runtime.engine
    pool = engine.sync_engine.pool
    statements = direct.Statements(engine, max_event_bytes=1_000_000)
    before = pool.checkedout()
    sent: list[str] = []
    async with statements.connect() as connection:
        assert pool.checkedout() == before + 1
        driver = (await connection.get_raw_connection()).driver_connection
        driver.add_query_logger(lambda record: sent.append(record.query))
        row = await direct._fetchrow(connection, "SELECT 1 AS one")
        assert row["one"] == 1
        assert not driver.is_in_transaction()  # each statement its own
    assert pool.checkedout() == before
    await asyncio.sleep(0)  # the driver calls its query loggers soon, not at once
    assert sent == ["SELECT 1 AS one"]  # nothing more on checkout or checkin (no ROLLBACK)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SQLAlchemy warns of a double checkin
        async with statements.connect() as connection:
            await connection.invalidate(RuntimeError("gone"))
            with pytest.raises(RuntimeError):
                await connection.get_raw_connection()
    assert pool.checkedout() == before
    async with statements.connect() as connection:
        row = await direct._fetchrow(connection, "SELECT 1 AS one")
        assert row["one"] == 1
