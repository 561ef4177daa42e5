"""HTTP entrypoints: parse, call a use case, map its errors. Each route declares its roles."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    return []
