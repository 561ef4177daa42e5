"""On-demand requests: local-first offers, first accept wins, widening and expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

if TYPE_CHECKING:
    from conftest import World

pytestmark = pytest.mark.integration


async def on_duty(world: World, departement: str, specialty: str, pid: str | None = None) -> str:
    """A new responder of `specialty` serving `departement`, on duty; returns their RPPS."""
    pid = pid or f"pro-{uuid.uuid4().hex[:8]}"
    rpps = f"2{uuid.uuid4().int % 10**10:010d}"
    await world.add_responder(pid, rpps, departements=(departement,), specialty=specialty)
    answer = await world.client.put(
        "/responders/me/duty", json={"on_duty": True}, headers=world.responder(rpps)
    )
    assert answer.status_code == 200, answer.text
    return rpps


async def request(world: World, specialty: str) -> dict[str, object]:
    answer = await world.client.post(
        "/consultations",
        json={"specialty_code": specialty, "resource_id": world.kiosk_id, "urgency": "urgent"},
        headers=world.nurse(),
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


async def inbox(world: World, rpps: str) -> list[str]:
    answer = await world.client.get("/responders/me/offers", headers=world.responder(rpps))
    return [offer["id"] for offer in answer.json()]


async def test_local_responders_are_offered_first_and_the_first_accept_wins(world: World) -> None:
    specialty = f"X{uuid.uuid4().hex[:6]}"
    local_a = await on_duty(world, "67", specialty)
    local_b = await on_duty(world, "67", specialty)
    regional = await on_duty(world, "68", specialty)
    asked = await request(world, specialty)
    assert asked["offers_made"] == 2
    assert await inbox(world, local_a) == [asked["id"]]
    assert await inbox(world, regional) == []
    pushed = await world.client.get(
        "/responders/me/offers/stream",
        params={"max_events": 1, "interval": 0.2},
        headers=world.responder(local_a),
    )
    assert pushed.headers["content-type"].startswith("text/event-stream")
    assert f"event: offer\nid: {asked['id']}\n" in pushed.text

    answers = await asyncio.gather(
        *(
            world.client.post(f"/consultations/{asked['id']}/accept", headers=world.responder(r))
            for r in (local_a, local_b)
        )
    )
    assert Counter(a.status_code for a in answers) == {200: 1, 409: 1}
    accepted = next(a.json() for a in answers if a.status_code == 200)
    assert accepted["status"] == "accepted"
    assert accepted["time_to_accept_seconds"] >= 0
    appointment = await world.client.get(
        f"/appointments/{accepted['appointment_id']}", headers=world.nurse()
    )
    assert appointment.json()["mode"] == "on_demand"
    assert await inbox(world, local_b) == []


async def test_a_responder_whose_scheduled_call_starts_soon_is_not_offered(world: World) -> None:
    specialty = f"X{uuid.uuid4().hex[:6]}"
    soon_busy_id = f"pro-{uuid.uuid4().hex[:8]}"
    soon_busy = await on_duty(world, "67", specialty, pid=soon_busy_id)
    free = await on_duty(world, "67", specialty)
    # Arrange: a booked call of `soon_busy` starting in five minutes, as the scheduled path
    # would have written it (the on-demand call an accept books would overlap it).
    async with world.app.state.runtime.engine.begin() as connection:
        await connection.execute(
            text(
                """INSERT INTO appointments (id, site_id, responder_id, specialty_code, act,
                   departement, patient_ref, mode, assistance, status, start_at, end_at,
                   block_end, blocking, created_by, created_at, updated_at)
                   VALUES (:id, :site, :responder, :specialty, 1, '67', 'pt_soon', 1, 1,
                   'booked', now() + interval '5 minutes', now() + interval '20 minutes',
                   now() + interval '25 minutes', true, 'test', now(), now())"""
            ),
            {
                "id": uuid.uuid4(),
                "site": world.site_id,
                "responder": soon_busy_id,
                "specialty": specialty,
            },
        )

    asked = await request(world, specialty)

    assert await inbox(world, soon_busy) == []
    assert await inbox(world, free) == [asked["id"]]


async def test_nobody_local_widens_then_expires(fast_world: World) -> None:
    world = fast_world
    specialty = f"X{uuid.uuid4().hex[:6]}"
    local = await on_duty(world, "67", specialty)
    regional = await on_duty(world, "68", specialty)
    asked = await request(world, specialty)
    assert asked["offers_made"] == 1

    async def widened() -> bool:
        return await inbox(world, regional) == [asked["id"]]

    await world.eventually(widened)

    async def expired() -> bool:
        answer = await world.client.get(f"/consultations/{asked['id']}", headers=world.nurse())
        return bool(answer.json()["status"] == "expired")

    await world.eventually(expired)
    late = await world.client.post(
        f"/consultations/{asked['id']}/accept", headers=world.responder(local)
    )
    assert late.status_code == 409
