"""Public search, map and reference lists (a token only widens the fields shown)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from maillage_common.auth import Principal, public
from maillage_common.http.dependencies import UnitOfWorkDep
from maillage_directory.api.common import OptionalCaller, domain_errors, sees_private_fields
from maillage_directory.api.schemas import ProfessionalRead, SiteRead
from maillage_directory.db.search import Criteria
from maillage_directory.domain import geography
from maillage_directory.domain.errors import FieldError, InvalidValueError, ValidationFailedError
from maillage_directory.domain.model import Act, SiteCategory
from maillage_directory.domain.specialties import specialty_list
from maillage_directory.use_cases.search import Page, search_directory, search_documents

router = APIRouter(tags=["search"], dependencies=[public()])


class SearchParams(BaseModel):
    """Every search filter, parsed from the query string."""

    specialty: list[str]
    act: Act | None
    departement: list[str]
    lat: float | None
    lon: float | None
    radius_km: float | None
    near_site: uuid.UUID | None
    technical_vendor: str | None
    language: str | None
    max_response_hours: int | None
    external_patients: bool | None
    category: SiteCategory | None
    limit: int
    offset: int


def search_params(
    specialty: Annotated[list[str], Query(description="TRE_R38 code or slug")] = [],  # noqa: B006
    act: Act | None = None,
    departement: Annotated[list[str], Query()] = [],  # noqa: B006
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float | None, Query(gt=0, le=1000)] = None,
    near_site: uuid.UUID | None = None,
    technical_vendor: Annotated[str | None, Query(max_length=200)] = None,
    language: Annotated[str | None, Query(max_length=10)] = None,
    max_response_hours: Annotated[int | None, Query(ge=0)] = None,
    external_patients: bool | None = None,
    category: SiteCategory | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> SearchParams:
    return SearchParams(
        specialty=specialty,
        act=act,
        departement=departement,
        lat=lat,
        lon=lon,
        radius_km=radius_km,
        near_site=near_site,
        technical_vendor=technical_vendor,
        language=language,
        max_response_hours=max_response_hours,
        external_patients=external_patients,
        category=category,
        limit=limit,
        offset=offset,
    )


Params = Annotated[SearchParams, Depends(search_params)]


def criteria_of(params: SearchParams) -> Criteria:
    """Check the filters against the reference lists (422 naming each bad one)."""
    errors: list[FieldError] = []
    codes = specialty_list()
    specialties: list[str] = []
    for value in params.specialty:
        try:
            specialties.append(codes.resolve(value))
        except InvalidValueError as error:
            errors.append(FieldError("specialty", error.reason))
    departements: list[str] = []
    for value in params.departement:
        try:
            departements.append(geography.validate_departement(value))
        except InvalidValueError as error:
            errors.append(FieldError("departement", error.reason))
    if (params.lat is None) != (params.lon is None):
        errors.append(FieldError("lat", "lat and lon go together"))
    elif params.lat is not None and params.lon is not None:
        try:
            geography.validate_point(params.lat, params.lon)
        except InvalidValueError as error:
            errors.append(FieldError("lat", error.reason))
    if params.radius_km is not None and params.lat is None and params.near_site is None:
        errors.append(FieldError("radius_km", "needs a point (lat, lon) or near_site"))
    if errors:
        raise ValidationFailedError(errors)
    return Criteria(
        specialties=specialties,
        act=params.act.value if params.act else None,
        departements=departements,
        latitude=params.lat,
        longitude=params.lon,
        radius_km=params.radius_km,
        technical_vendor=params.technical_vendor,
        language=params.language,
        max_response_hours=params.max_response_hours,
        external_patients=params.external_patients,
        limit=params.limit,
        offset=params.offset,
        extra={"category": params.category.value if params.category else None},
    )


class ProfessionalHit(BaseModel):
    professional: ProfessionalRead
    distance_km: float | None


class ProfessionalPage(BaseModel):
    items: list[ProfessionalHit]
    next_offset: int | None


class SiteHit(BaseModel):
    site: SiteRead
    distance_km: float | None


class SitePage(BaseModel):
    items: list[SiteHit]
    next_offset: int | None


PRIVATE_FIELDS = {
    "professional": ("contact_phone", "mssante_address"),
    "site": ("contact_phone", "responsible"),
}


MAP_LIMIT = 2000


async def _map_search(uow: UnitOfWorkDep, kind: str, params: SearchParams) -> Page:
    # A map shows everything that matches (up to MAP_LIMIT per kind), not one page.
    with domain_errors():
        criteria = replace(criteria_of(params), limit=MAP_LIMIT, offset=0)
        return await search_directory(uow, kind, criteria, params.near_site)


async def _search_response(
    uow: UnitOfWorkDep, kind: str, params: SearchParams, caller: Principal | None
) -> Response:
    # The hot path: PostgreSQL renders each hit's JSON (public fields nulled), Python only
    # splices the fragments, instead of decoding and re-validating every snapshot.
    redact = () if sees_private_fields(caller) else PRIVATE_FIELDS[kind]
    with domain_errors():
        criteria = replace(criteria_of(params), redact=redact)
        page = await search_documents(uow, kind, criteria, params.near_site)
    items = ",".join(
        f'{{"{kind}":{hit.document},"distance_km":{json.dumps(_km(hit.distance_km))}}}'
        for hit in page.hits
    )
    body = f'{{"items":[{items}],"next_offset":{json.dumps(page.next_offset)}}}'
    return Response(body, media_type="application/json")


@router.get("/search/professionals", response_model=ProfessionalPage)
async def search_professionals(
    params: Params, caller: OptionalCaller, uow: UnitOfWorkDep
) -> Response:
    """Professionals matching every filter, same département first, then by distance."""
    return await _search_response(uow, "professional", params, caller)


@router.get("/search/sites", response_model=SitePage)
async def search_sites(params: Params, caller: OptionalCaller, uow: UnitOfWorkDep) -> Response:
    """Sites matching every filter, same département first, then by distance."""
    return await _search_response(uow, "site", params, caller)


def _km(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _feature(kind: str, latitude: float, longitude: float, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [longitude, latitude]},
        "properties": {"kind": kind, **props},
    }


@router.get("/map")
async def directory_map(params: Params, uow: UnitOfWorkDep) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the sites and professionals matching the filters.

    Pagination parameters are ignored: up to 2000 features of each kind.
    """
    features: list[dict[str, Any]] = []
    for hit in (await _map_search(uow, "site", params)).hits:
        data = hit.aggregate.data
        location = data["location"]
        props = {
            "id": str(hit.aggregate.id),
            "name": data["name"],
            "category": data["category"],
            "departement": data["departement"],
        }
        features.append(_feature("site", location["latitude"], location["longitude"], props))
    for hit in (await _map_search(uow, "professional", params)).hits:
        data = hit.aggregate.data
        props = {
            "id": str(hit.aggregate.id),
            "name": f"{data['given_name']} {data['family_name']}",
            "specialty_codes": data["specialty_codes"],
            "acts": data["acts"],
        }
        for place in data["practice_locations"]:
            location = place["location"]
            features.append(
                _feature("professional", location["latitude"], location["longitude"], props)
            )
    return {"type": "FeatureCollection", "features": features}


@router.get("/reference/specialties")
async def specialties() -> dict[str, Any]:
    """The versioned specialty list and its mapping to the national nomenclature."""
    reference = specialty_list()
    return {
        "version": reference.version,
        "nomenclature": reference.nomenclature,
        "specialties": [
            {"code": s.code, "slug": s.slug, "label": s.label} for s in reference.by_code.values()
        ],
    }
