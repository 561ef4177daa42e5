"""HTTP routes: parse, call a use case, map errors to problems; roles declared per route."""

from __future__ import annotations

from fastapi import APIRouter

from maillage_directory.api import fhir, imports, kiosks, professionals, search, sites


def routers() -> list[APIRouter]:
    # Search first: routes are matched in order and search is the hot path.
    return [
        search.router,
        professionals.router,
        sites.router,
        kiosks.router,
        imports.router,
        fhir.router,
    ]
