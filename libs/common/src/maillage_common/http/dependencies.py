"""Annotated dependencies routes use to reach the runtime."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from maillage_common.db.unit_of_work import UnitOfWork
from maillage_common.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def new_unit_of_work(request: Request) -> UnitOfWork:
    # async: FastAPI runs a plain `def` dependency in its thread pool (a hop per request).
    return get_runtime(request).unit_of_work()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(new_unit_of_work)]
