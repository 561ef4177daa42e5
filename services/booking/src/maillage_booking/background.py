"""The service's own timers: hold expiry, on-demand widening and expiry, overdue
tele-expertise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import cast

import structlog

from maillage_booking.settings import BookingSettings
from maillage_booking.use_cases.appointments import expire_holds
from maillage_booking.use_cases.consultations import sweep_consultations
from maillage_booking.use_cases.expertises import flag_overdue
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.runtime import Runtime

_log = structlog.get_logger(__name__)

Sweep = Callable[[UnitOfWork, BookingSettings], Awaitable[int]]


async def _expire_holds(uow: UnitOfWork, settings: BookingSettings) -> int:
    return await expire_holds(uow, hold_ttl=timedelta(seconds=settings.hold_ttl_seconds))


def sweeper(*sweeps: Sweep) -> Callable[[Runtime], contextlib.AbstractAsyncContextManager[None]]:
    """A background task running each sweep every `sweep_interval_seconds`."""

    @contextlib.asynccontextmanager
    async def run(runtime: Runtime) -> AsyncIterator[None]:
        settings = cast(BookingSettings, runtime.settings)
        task = asyncio.create_task(_loop(runtime, settings, sweeps), name="booking-sweeper")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run


async def _loop(runtime: Runtime, settings: BookingSettings, sweeps: tuple[Sweep, ...]) -> None:
    while True:
        for sweep in sweeps:
            try:
                await sweep(runtime.unit_of_work(), settings)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a failed sweep retries next tick
                _log.warning(
                    "sweep_failed", sweep=getattr(sweep, "__name__", "?"), error=repr(error)
                )
        await asyncio.sleep(settings.sweep_interval_seconds)


async def _flag_overdue_expertises(uow: UnitOfWork, settings: BookingSettings) -> int:
    return await flag_overdue(uow)


DEFAULT_SWEEPS: tuple[Sweep, ...] = (_expire_holds, sweep_consultations, _flag_overdue_expertises)
