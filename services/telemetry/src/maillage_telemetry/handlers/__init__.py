"""Event entrypoints: one consumer group per read model, applying events idempotently."""

from __future__ import annotations

from maillage.directory.v1 import events_pb2 as directory_pb2
from maillage.telemetry.v1 import events_pb2
from maillage_common.bus import EventConsumer
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.events.envelope import Event
from maillage_telemetry.domain.alerts import rules_by_code
from maillage_telemetry.settings import TelemetrySettings
from maillage_telemetry.use_cases.directory import apply_kiosk_snapshot, apply_site_snapshot
from maillage_telemetry.use_cases.store import store_measurement_batch


async def on_site_changed(event: Event[directory_pb2.SiteChanged], uow: UnitOfWork) -> None:
    await apply_site_snapshot(uow, event.message)


async def on_kiosk_changed(event: Event[directory_pb2.KioskChanged], uow: UnitOfWork) -> None:
    await apply_kiosk_snapshot(uow, event.message)


def consumers(settings: TelemetrySettings) -> list[EventConsumer]:
    rules = rules_by_code(settings.threshold_rules())

    async def on_batch(event: Event[events_pb2.MeasurementBatchIngested], uow: UnitOfWork) -> None:
        await store_measurement_batch(uow, event.message, rules)

    return [
        EventConsumer(
            "telemetry-directory",
            handlers={
                directory_pb2.SiteChanged: on_site_changed,
                directory_pb2.KioskChanged: on_kiosk_changed,
            },
        ),
        # This service's own pipeline: the batch event is the write-ahead log of the
        # measurement store (one record = one batch = one multi-row insert).
        EventConsumer(
            "telemetry-measurements",
            handlers={events_pb2.MeasurementBatchIngested: on_batch},
        ),
    ]
