"""HTTP entrypoints: parse, call a use case, map its errors. Each route declares its roles."""

from __future__ import annotations

from fastapi import APIRouter

from maillage_telemetry.api import alerts, consent, devices, fleet, measurements


def routers() -> list[APIRouter]:
    return [measurements.router, fleet.router, consent.router, devices.router, alerts.router]
