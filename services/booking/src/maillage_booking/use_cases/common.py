"""What every use case shares: the clock, protobuf conversions, the event context of a row."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import DBAPIError

from maillage_booking.db.repositories import RETRYABLE, sqlstate

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(value: datetime | None) -> Timestamp | None:
    """The protobuf Timestamp of an instant (a naive one is taken as local time, as
    `astimezone` does). Built from the exact difference to the epoch: `FromDatetime` costs
    several times more, on every event."""
    if value is None:
        return None
    since = value.astimezone(UTC) - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def duration(value: timedelta) -> Duration:
    result = Duration()
    result.FromTimedelta(value)
    return result


def appointment_context(row: Any) -> dict[str, Any]:
    """Fields 1-12 shared by every appointment event (statistics never looks anything up)."""
    return {
        "appointment_id": str(row.id),
        "site_id": row.site_id,
        "responder_id": row.responder_id,
        "specialty_code": row.specialty_code,
        "act": row.act,
        "departement": row.departement,
        "patient_ref": row.patient_ref,
        "mode": row.mode,
        "assistance": row.assistance,
        "resource_id": row.resource_id or "",
        "start": ts(row.start_at),
        "end": ts(row.end_at),
    }


async def retry_on_conflict(work: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run a whole transaction again when PostgreSQL aborted it for a deadlock or
    serialization failure (no effect was committed, so a retry is safe)."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except DBAPIError as error:
            if sqlstate(error) not in RETRYABLE or attempt == attempts:
                raise
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")
