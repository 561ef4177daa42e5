"""Public search, map and reference lists (a token only widens the fields shown)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from maillage_common.auth import Principal, public
from maillage_common.http.dependencies import UnitOfWorkDep, get_runtime
from maillage_directory.api.common import (
    PROBLEMS,
    OptionalCaller,
    domain_errors,
    sees_private_fields,
)
from maillage_directory.api.schemas import ProfessionalRead, SiteRead
from maillage_directory.db.search import Criteria
from maillage_directory.domain import geography
from maillage_directory.domain.errors import FieldError, InvalidValueError, ValidationFailedError
from maillage_directory.domain.model import Act, SiteCategory
from maillage_directory.domain.specialties import specialty_list
from maillage_directory.use_cases.search import Page, search_directory, search_documents

router = APIRouter(tags=["search"], dependencies=[public()], responses=PROBLEMS)


class SearchParams(BaseModel):
    """Every search filter, parsed from the query string in one validation.

    Parsed by `search_params` in one validation, not as fourteen `Query()` parameters:
    FastAPI resolves each declared parameter with per-request type introspection, which
    cost more than the search itself.
    """

    specialty: list[str] = Field(default_factory=list, description="TRE_R38 code or slug")
    act: Act | None = None
    departement: list[str] = Field(default_factory=list)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    radius_km: float | None = Field(default=None, gt=0, le=1000)
    near_site: uuid.UUID | None = None
    technical_vendor: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=10)
    max_response_hours: int | None = Field(default=None, ge=0)
    external_patients: bool | None = None
    category: SiteCategory | None = None
    limit: int = Field(default=20, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=100_000)


_REPEATABLE = frozenset({"specialty", "departement"})
_NAMES = frozenset(SearchParams.model_fields)


async def search_params(request: Request) -> SearchParams:
    query = request.query_params
    raw = {
        name: query.getlist(name) if name in _REPEATABLE else query[name]
        for name in _NAMES.intersection(query.keys())
    }
    try:
        return SearchParams.model_validate(raw)
    except ValidationError as error:
        # The chassis answers this as a 422 problem naming each parameter.
        raise RequestValidationError(
            [{**item, "loc": ("query", *item["loc"])} for item in error.errors()]
        ) from error


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inlined(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: _inlined(value, definitions) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    return schema


def _documented_parameters() -> dict[str, Any]:
    """The OpenAPI query parameters of `SearchParams` (FastAPI no longer sees them)."""
    schema = SearchParams.model_json_schema()
    definitions = schema.pop("$defs", {})
    parameters = []
    for name, field in schema["properties"].items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
        if "description" in field:
            parameter["description"] = field["description"]
        parameter["schema"] = _inlined(field, definitions)
        parameters.append(parameter)
    return {"parameters": parameters}


SEARCH_PARAMETERS = _documented_parameters()
Params = Annotated[SearchParams, Depends(search_params)]


async def read_engine(request: Request) -> AsyncEngine:
    """The pool, for read-only statements that need no unit of work."""
    return get_runtime(request).engine


Engine = Annotated[AsyncEngine, Depends(read_engine)]


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
    engine: AsyncEngine, kind: str, params: SearchParams, caller: Principal | None
) -> Response:
    # The hot path: PostgreSQL renders each hit's JSON (public fields nulled), Python only
    # splices the fragments, instead of decoding and re-validating every snapshot.
    redact = () if sees_private_fields(caller) else PRIVATE_FIELDS[kind]
    with domain_errors():
        criteria = replace(criteria_of(params), redact=redact)
        page = await search_documents(engine, kind, criteria, params.near_site)
    items = ",".join(
        f'{{"{kind}":{hit.document},"distance_km":{_km_json(hit.distance_km)}}}'
        for hit in page.hits
    )
    body = f'{{"items":[{items}],"next_offset":{json.dumps(page.next_offset)}}}'
    return Response(body, media_type="application/json")


@router.get(
    "/search/professionals", response_model=ProfessionalPage, openapi_extra=SEARCH_PARAMETERS
)
async def search_professionals(params: Params, caller: OptionalCaller, engine: Engine) -> Response:
    """Professionals matching every filter, same département first, then by distance."""
    return await _search_response(engine, "professional", params, caller)


@router.get("/search/sites", response_model=SitePage, openapi_extra=SEARCH_PARAMETERS)
async def search_sites(params: Params, caller: OptionalCaller, engine: Engine) -> Response:
    """Sites matching every filter, same département first, then by distance."""
    return await _search_response(engine, "site", params, caller)


def _km_json(value: float | None) -> str:
    # json.dumps of the distance rounded to metres, without a json.dumps call per hit:
    # a finite float's JSON is its repr (distances are haversines of validated points).
    return "null" if value is None else repr(round(value, 3))


def _feature(kind: str, latitude: float, longitude: float, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [longitude, latitude]},
        "properties": {"kind": kind, **props},
    }


@router.get("/map", openapi_extra=SEARCH_PARAMETERS)
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
        "nomenclature_version": reference.nomenclature_version,
        "specialties": [
            {"code": s.code, "slug": s.slug, "label": s.label} for s in reference.by_code.values()
        ],
    }
