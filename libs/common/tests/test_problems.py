"""Every error is an RFC 9457 problem document naming the field and the reason."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from maillage_common.http.problems import Problem, field_error, install_problem_handlers


class SlotCreate(BaseModel):
    duration_minutes: int = Field(gt=0, le=120)
    responder_id: str


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/slots")
    async def create_slot(slot: SlotCreate) -> SlotCreate:
        return slot

    @app.get("/conflict")
    async def conflict() -> None:
        raise Problem(
            409,
            "Slot taken",
            "another booking holds this slot",
            errors=[field_error("start", "overlaps an existing appointment")],
        )

    @app.get("/database-down")
    async def database_down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internal detail")

    return app


async def request(method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def test_invalid_body_names_each_field_and_reason() -> None:
    response = await request("POST", "/slots", json={"duration_minutes": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = {e["field"]: e["reason"] for e in response.json()["errors"]}
    assert set(errors) == {"duration_minutes", "responder_id"}
    assert "greater than 0" in errors["duration_minutes"]
    assert errors["responder_id"] == "Field required"


async def test_domain_problem_keeps_status_title_and_errors() -> None:
    body = (await request("GET", "/conflict")).json()
    assert body["status"] == 409
    assert body["title"] == "Slot taken"
    assert body["instance"] == "/conflict"
    assert body["errors"] == [{"field": "start", "reason": "overlaps an existing appointment"}]


async def test_database_outage_answers_503_with_retry_after() -> None:
    response = await request("GET", "/database-down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


async def test_unexpected_errors_do_not_leak_details() -> None:
    response = await request("GET", "/bug")
    assert response.status_code == 500, response.text
    assert "secret" not in response.text
    assert response.headers.get("content-type") == "application/problem+json", response.text


async def test_unknown_route_is_a_problem_too() -> None:
    response = await request("GET", "/nowhere")
    assert response.status_code == 404
    assert response.json()["title"] == "Not Found"
