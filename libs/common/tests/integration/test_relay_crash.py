"""The relay dies after the broker acknowledged a batch and before deleting it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from maillage_common.bus import relay as relay_module
from maillage_common.runtime import run_runtime
from maillage_common.settings import ServiceSettings

from .bus_harness import applying_consumer, appointment_booked, record_appointments
from .conftest import scalar, wait_until
from .test_bus_reliability import applied_in_order

pytestmark = pytest.mark.integration


async def test_a_batch_republished_after_a_relay_crash_is_applied_once(
    bus_settings: ServiceSettings,
    engine: AsyncEngine,
    group: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_delete = sqlalchemy.delete
    crashes: list[int] = []

    def delete_that_crashes_once(*args: Any, **kwargs: Any) -> Any:
        # Runs after every record of the batch was acknowledged by the broker.
        if not crashes:
            crashes.append(1)
            raise ConnectionResetError("relay killed before marking the batch")
        return real_delete(*args, **kwargs)

    monkeypatch.setattr(relay_module, "delete", delete_that_crashes_once)
    subjects = [f"appt-relay-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
    async with run_runtime(
        bus_settings,
        published=[type(appointment_booked("x"))],
        consumers=[applying_consumer(group)],
    ) as runtime:
        await record_appointments(bus_settings, subjects, runtime.sessions)
        await wait_until(lambda: _all_applied(engine, set(subjects)), timeout=90)
        await wait_until(lambda: _outbox_empty(engine), timeout=30)
    applied = await applied_in_order(engine, set(subjects))
    assert crashes == [1], "the crash must have happened for this test to mean anything"
    duplicates = REGISTRY.get_sample_value(
        "maillage_events_consumed_total",
        {"consumer": group, "topic": "booking.appointments", "outcome": "duplicate"},
    )
    assert (duplicates or 0) >= 1, "the republished batch must reach the consumer"
    assert all(len(ids) == 1 for ids in applied.values())
    assert sorted(applied) == sorted(subjects)


async def _all_applied(engine: AsyncEngine, subjects: set[str]) -> bool:
    return len(await applied_in_order(engine, subjects)) == len(subjects)


async def _outbox_empty(engine: AsyncEngine) -> bool:
    return await scalar(engine, "SELECT count(*) FROM outbox_event") == 0
