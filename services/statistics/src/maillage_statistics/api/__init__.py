"""HTTP entrypoints: parse, call a use case, map its errors. Each route declares its roles."""

from __future__ import annotations

from fastapi import APIRouter

from maillage_statistics.api.indicators import router as indicators_router


def routers() -> list[APIRouter]:
    return [indicators_router]
