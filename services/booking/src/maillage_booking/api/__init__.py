"""HTTP entrypoints: parse, call a use case, map its errors. Each route declares its roles."""

from __future__ import annotations

from fastapi import APIRouter

from maillage_booking.api import appointments, consultations, expertises, patients, schedules


def routers() -> list[APIRouter]:
    return [
        schedules.router,
        appointments.router,
        appointments.waitlist_router,
        consultations.router,
        expertises.router,
        patients.router,
    ]
