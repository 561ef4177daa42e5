"""HTTP routes: parse, call a use case, map errors to problems; roles declared per route."""

from __future__ import annotations

from fastapi import APIRouter

from maillage_directory.api import fhir, imports, kiosks, professionals, search, sites


def routers() -> list[APIRouter]:
    return [
        professionals.router,
        sites.router,
        kiosks.router,
        search.router,
        imports.router,
        fhir.router,
    ]
