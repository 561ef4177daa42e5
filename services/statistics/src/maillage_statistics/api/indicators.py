"""Indicator routes: JSON or CSV for every indicator, the observatory summary, open data.

Access: detailed indicators and the summary are for coordinators (and services); the
open-data export is public because it is built for publication: aggregates per département
and month only, no personal data, cells under 5 suppressed.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from maillage_common.auth import Principal, Role, public, requires
from maillage_common.http.dependencies import RuntimeDep, UnitOfWorkDep
from maillage_common.http.problems import Problem, field_error
from maillage_statistics.domain.rules import Filters, UsageRule
from maillage_statistics.settings import StatisticsSettings
from maillage_statistics.use_cases.indicators import (
    INDICATORS,
    IndicatorParameters,
    UnknownIndicatorError,
    compute_indicator,
    observatory_summary,
    open_data,
)

router = APIRouter(prefix="/v1", tags=["indicators"])
Coordinator = Annotated[Principal, requires(Role.COORDINATOR, Role.SERVICE)]
Format = Literal["json", "csv"]


class IndicatorRead(BaseModel):
    """One indicator's rows for the filters applied."""

    indicator: str
    filters: dict[str, Any]
    rows: list[dict[str, Any]]


class IndicatorListRead(BaseModel):
    indicators: list[str]


def _filters(
    since: Annotated[
        datetime | None, Query(description="period start (inclusive), tz-aware")
    ] = None,
    until: Annotated[datetime | None, Query(description="period end (exclusive), tz-aware")] = None,
    departement: Annotated[str | None, Query(max_length=3)] = None,
    site_category: Annotated[str | None, Query(max_length=64)] = None,
    deployment_model: Annotated[str | None, Query(max_length=64)] = None,
    specialty: Annotated[str | None, Query(max_length=16)] = None,
) -> Filters:
    errors = [
        field_error(name, "must be timezone-aware")
        for name, value in (("since", since), ("until", until))
        if value is not None and value.tzinfo is None
    ]
    if not errors and since and until and until <= since:
        errors.append(field_error("until", "must be after since"))
    if errors:
        raise Problem(422, "Invalid request", "some fields are invalid", errors=errors)
    return Filters(
        since=since,
        until=until,
        departement=departement,
        site_category=site_category,
        deployment_model=deployment_model,
        specialty=specialty,
    )


FiltersDep = Annotated[Filters, Depends(_filters)]


def parameters(settings: StatisticsSettings) -> IndicatorParameters:
    """The written rules' parameters from the service settings."""
    return IndicatorParameters(
        usage_rule=UsageRule(
            sessions_per_month=settings.usage_regular_sessions_per_month,
            months=settings.usage_regular_months,
        ),
        kiosk_online_seconds=settings.kiosk_online_seconds,
        general_medicine_specialty=settings.general_medicine_specialty,
    )


def _parameters(runtime: RuntimeDep) -> IndicatorParameters:
    settings = runtime.settings
    assert isinstance(settings, StatisticsSettings)
    return parameters(settings)


ParametersDep = Annotated[IndicatorParameters, Depends(_parameters)]


def _wants_csv(request: Request, format_: Format | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("accept", "")


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV (header from the union of keys; lists joined with ';')."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                key: ";".join(map(str, value)) if isinstance(value, list) else value
                for key, value in row.items()
            }
        )
    return buffer.getvalue()


def _csv_response(rows: list[dict[str, Any]], name: str) -> Response:
    return Response(
        to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _filters_echo(filters: Filters) -> dict[str, Any]:
    return {
        "since": filters.since,
        "until": filters.until,
        "departement": filters.departement,
        "site_category": filters.site_category,
        "deployment_model": filters.deployment_model,
        "specialty": filters.specialty,
    }


@router.get("/indicators", response_model=IndicatorListRead)
async def list_indicators(caller: Coordinator) -> IndicatorListRead:
    """Names of every indicator (each served at /v1/indicators/{name})."""
    return IndicatorListRead(indicators=sorted(INDICATORS))


@router.get(
    "/indicators/{name}",
    response_model=IndicatorRead,
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_indicator(
    name: str,
    request: Request,
    caller: Coordinator,
    filters: FiltersDep,
    uow: UnitOfWorkDep,
    rules: ParametersDep,
    format_: Annotated[Format | None, Query(alias="format")] = None,
) -> Any:
    """One indicator, as JSON (default) or CSV (`format=csv` or `Accept: text/csv`)."""
    try:
        rows = await compute_indicator(uow, name, filters, rules)
    except UnknownIndicatorError as error:
        raise Problem(404, "Not Found", f"no indicator named {name!r}") from error
    if _wants_csv(request, format_):
        return _csv_response(rows, name)
    return IndicatorRead(indicator=name, filters=_filters_echo(filters), rows=rows)


@router.get("/observatory")
async def get_observatory(
    caller: Coordinator, filters: FiltersDep, uow: UnitOfWorkDep, rules: ParametersDep
) -> dict[str, Any]:
    """The regional bilan's layout for the period and territory of the filters."""
    return await observatory_summary(uow, filters, rules)


@router.get(
    "/open-data.csv",
    dependencies=[public()],
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_open_data(filters: FiltersDep, uow: UnitOfWorkDep, rules: ParametersDep) -> Response:
    """Open data: per département and month, no personal data, cells under 5 suppressed."""
    rows = await open_data(uow, filters, rules)
    return Response(
        to_csv(rows) if rows else "departement,month,indicator,value\n",
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="maillage-open-data.csv"'},
    )
