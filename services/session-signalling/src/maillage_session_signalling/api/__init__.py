"""HTTP entrypoints: parse, call a use case, map its errors. Each route declares its roles."""

from __future__ import annotations

from fastapi import APIRouter

from maillage_session_signalling.api import preflight, sessions, signalling


def routers() -> list[APIRouter]:
    return [sessions.router, preflight.router, signalling.router]
