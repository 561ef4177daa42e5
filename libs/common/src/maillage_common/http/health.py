"""Liveness and readiness, as orchestrators and `make up` probe them."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from maillage_common.auth.routes import public
from maillage_common.runtime import Runtime

router = APIRouter(tags=["health"], dependencies=[public()])
_CHECK_TIMEOUT_SECONDS = 1.0


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and the bus is connected")
async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks = {"database": await _database_ok(runtime), "broker": runtime.bus_ready}
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _database_ok(runtime: Runtime) -> bool:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_SECONDS), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
