"""Annotated dependencies routes use to reach the runtime."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# The dependencies are async: FastAPI runs a plain `def` dependency in its thread pool (a hop
# per request, about 5 % of telemetry's ingest CPU).
async def _runtime(request: Request) -> Runtime:
    return get_runtime(request)


async def new_unit_of_work(request: Request) -> UnitOfWork:
    return get_runtime(request).unit_of_work()


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(new_unit_of_work)]
