"""Appointments through the real HTTP app, broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

if TYPE_CHECKING:
    from conftest import World

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    day = datetime.now(PARIS).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def slot(world: World, start: datetime, **extra: Any) -> dict[str, Any]:
    return {"responder_id": world.responder_id, "start": start.isoformat(), **extra}


async def test_directory_snapshots_apply_only_when_newer(world: World) -> None:
    pid = world.responder_id
    stale = world.professional(pid, world.rpps, version=1, departements=("75",))
    newer = world.professional(pid, world.rpps, version=3, departements=("68",))
    older = world.professional(pid, world.rpps, version=2, departements=("13",))
    await world.publish((newer, pid), (older, pid), (stale, pid))
    sentinel = f"{pid}-sentinel"
    await world.add_responder(sentinel, "10000000000")

    departements = await world.scalar("SELECT departements[1] FROM responders WHERE id = :i", i=pid)
    version = await world.scalar("SELECT version FROM responders WHERE id = :i", i=pid)
    assert (departements, version) == ("68", 3)


async def test_hold_then_confirm_then_cancel_records_events_in_the_outbox(world: World) -> None:
    await world.set_schedule()
    held = await world.client.post(
        "/appointments",
        json=slot(
            world, tomorrow_at(10), hold=True, resource_id=world.kiosk_id, assistance="assisted"
        ),
        headers=world.nurse(),
    )
    assert held.status_code == 201, held.text
    body = held.json()
    assert body["status"] == "held"
    assert body["site_id"] == world.site_id
    assert body["departement"] == "67"
    confirmed = await world.client.post(
        f"/appointments/{body['id']}/confirm", json={}, headers=world.nurse()
    )
    assert confirmed.json()["status"] == "booked"
    cabin_taken = await world.client.post(
        "/appointments",
        json=slot(world, tomorrow_at(10), resource_id=world.kiosk_id),
        headers=world.nurse(),
    )
    assert cabin_taken.status_code == 409
    cancelled = await world.client.post(
        f"/appointments/{body['id']}/cancel",
        json={"reason": "patient_request"},
        headers=world.nurse(),
    )
    assert cancelled.json()["status"] == "cancelled"
    rebooked = await world.client.post(
        "/appointments", json=slot(world, tomorrow_at(10)), headers=world.nurse()
    )
    assert rebooked.status_code == 201


async def test_an_expired_hold_does_not_block_and_cannot_be_confirmed(fast_world: World) -> None:
    world = fast_world
    await world.set_schedule()
    held = await world.client.post(
        "/appointments", json=slot(world, tomorrow_at(11), hold=True), headers=world.nurse()
    )
    late = await world.client.post(
        f"/appointments/{held.json()['id']}/confirm", json={}, headers=world.nurse()
    )
    assert late.status_code == 409
    taken_over = await world.client.post(
        "/appointments", json=slot(world, tomorrow_at(11)), headers=world.nurse()
    )
    assert taken_over.status_code == 201, taken_over.text
    statuses = await world.scalar(
        "SELECT string_agg(status, ',' ORDER BY created_at) FROM appointments"
        " WHERE responder_id = :r",
        r=world.responder_id,
    )
    assert statuses == "expired,booked"


async def test_idempotency_key_returns_the_first_result(world: World) -> None:
    await world.set_schedule()
    headers = {**world.nurse(), "Idempotency-Key": str(uuid.uuid4())}
    first = await world.client.post(
        "/appointments", json=slot(world, tomorrow_at(12)), headers=headers
    )
    again = await world.client.post(
        "/appointments", json=slot(world, tomorrow_at(12)), headers=headers
    )
    rows = await world.scalar(
        "SELECT count(*) FROM appointments WHERE site_id = :s", s=world.site_id
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert rows == 1


async def test_reschedule_is_atomic(world: World) -> None:
    await world.set_schedule()
    nurse = world.nurse()
    first = (
        await world.client.post("/appointments", json=slot(world, tomorrow_at(14)), headers=nurse)
    ).json()
    other = (
        await world.client.post("/appointments", json=slot(world, tomorrow_at(15)), headers=nurse)
    ).json()
    refused = await world.client.post(
        f"/appointments/{first['id']}/reschedule",
        json={"start": tomorrow_at(15).isoformat()},
        headers=nurse,
    )
    assert refused.status_code == 409
    assert (await world.client.get(f"/appointments/{first['id']}", headers=nurse)).json()[
        "start"
    ] == first["start"]
    moved = await world.client.post(
        f"/appointments/{first['id']}/reschedule",
        json={"start": tomorrow_at(16).isoformat()},
        headers=nurse,
    )
    assert moved.status_code == 200
    freed = await world.client.post(
        "/appointments", json=slot(world, tomorrow_at(14)), headers=nurse
    )
    assert freed.status_code == 201
    assert other["status"] == "booked"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"start": "2030-01-01T10:00:00"}, 422, "start"),
        ({"start": "2020-01-01T10:00:00+01:00"}, 422, "start"),
        ({"start": "__tomorrow_1015"}, 422, "start"),
        ({"responder_id": "nobody"}, 422, "responder_id"),
        ({"end": "__tomorrow_1000"}, 422, "end"),
        ({"assistance": "assisted"}, 422, "resource_id"),
        ({"resource_id": "cabin-elsewhere"}, 422, "resource_id"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    world: World, change: dict[str, str], status: int, field: str
) -> None:
    values = {
        "__tomorrow_1015": tomorrow_at(10, 15).isoformat(),
        "__tomorrow_1000": tomorrow_at(10).isoformat(),
    }
    await world.set_schedule()
    body = slot(world, tomorrow_at(10))
    body.update({k: values.get(v, v) for k, v in change.items()})
    answer = await world.client.post("/appointments", json=body, headers=world.nurse())
    rows = await world.scalar(
        "SELECT count(*) FROM appointments WHERE site_id = :s", s=world.site_id
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert rows == 0


async def test_a_nonexistent_dst_time_in_an_exception_is_rejected(world: World) -> None:
    answer = await world.client.put(
        f"/responders/{world.responder_id}/schedule",
        json={
            **world.all_day,
            "exceptions": [
                {"kind": "closed", "date": "2027-03-28", "start": "02:30", "end": "05:00"}
            ],
        },
        headers=world.coordinator(),
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "exceptions.0.start"


async def test_free_slot_search_lists_earliest_first_without_taken_slots(world: World) -> None:
    await world.set_schedule()
    await world.client.post(
        "/appointments", json=slot(world, tomorrow_at(9)), headers=world.nurse()
    )
    found = await world.client.get(
        "/slots",
        params={
            "from": tomorrow_at(9).isoformat(),
            "to": tomorrow_at(10).isoformat(),
            "specialty": "SM26",
            "departement": "67",
        },
        headers=world.nurse(),
    )
    assert found.status_code == 200, found.text
    mine = [s for s in found.json() if s["responder_id"] == world.responder_id]
    assert [datetime.fromisoformat(s["start"]) for s in mine] == [tomorrow_at(9, 30)]


async def test_hundred_concurrent_bookings_of_one_slot_yield_exactly_one(world: World) -> None:
    await world.set_schedule()
    nurse = world.nurse()
    answers = await asyncio.gather(
        *(
            world.client.post("/appointments", json=slot(world, tomorrow_at(17)), headers=nurse)
            for _ in range(100)
        )
    )
    overlapping = await world.scalar(
        """SELECT count(*) FROM appointments a JOIN appointments b
           ON a.id < b.id AND a.blocking AND b.blocking AND a.responder_id = b.responder_id
           AND tstzrange(a.start_at, a.block_end) && tstzrange(b.start_at, b.block_end)
           WHERE a.responder_id = :r""",
        r=world.responder_id,
    )
    rows = await world.scalar(
        "SELECT count(*) FROM appointments WHERE blocking AND responder_id = :r",
        r=world.responder_id,
    )
    assert Counter(a.status_code for a in answers) == {201: 1, 409: 99}
    assert (overlapping, rows) == (0, 1)


async def test_session_events_record_fulfilled_and_noshow(world: World) -> None:
    from maillage.common.v1 import types_pb2 as types
    from maillage.session_signalling.v1 import events_pb2 as sessions

    await world.set_schedule()
    nurse = world.nurse()
    one = (
        await world.client.post("/appointments", json=slot(world, tomorrow_at(18)), headers=nurse)
    ).json()
    two = (
        await world.client.post("/appointments", json=slot(world, tomorrow_at(19)), headers=nurse)
    ).json()
    await world.publish(
        (sessions.SessionEnded(session_id="s1", appointment_id=one["id"]), "s1"),
        (
            sessions.SessionNoShow(
                session_id="s2", appointment_id=two["id"], missing_side=types.NO_SHOW_SIDE_PATIENT
            ),
            "s2",
        ),
    )

    async def recorded() -> bool:
        statuses = await world.scalar(
            "SELECT string_agg(status, ',' ORDER BY start_at) FROM appointments"
            " WHERE responder_id = :r",
            r=world.responder_id,
        )
        return bool(statuses == "fulfilled,noshow")

    await world.eventually(recorded)
    by_person = await world.client.post(
        f"/appointments/{one['id']}/outcome", json={"outcome": "noshow"}, headers=nurse
    )
    assert by_person.status_code == 409


@pytest.mark.parametrize("release", ["cancel", "reschedule"])
async def test_a_released_slot_is_offered_to_the_waitlist_as_a_hold(
    world: World, release: str
) -> None:
    await world.set_schedule()
    nurse = world.nurse()
    taken = (
        await world.client.post("/appointments", json=slot(world, tomorrow_at(13)), headers=nurse)
    ).json()
    entry = await world.client.post(
        "/waitlist",
        json={
            "responder_id": world.responder_id,
            "window_start": tomorrow_at(12).isoformat(),
            "window_end": tomorrow_at(15).isoformat(),
        },
        headers=nurse,
    )
    assert entry.status_code == 201, entry.text
    released = await world.client.post(
        f"/appointments/{taken['id']}/{release}",
        json={"reason": "other"} if release == "cancel" else slot(world, tomorrow_at(18)),
        headers=nurse,
    )
    assert released.status_code == 200, released.text
    offered = (await world.client.get(f"/waitlist/{entry.json()['id']}", headers=nurse)).json()
    assert offered["status"] == "offered"
    confirmed = await world.client.post(
        f"/appointments/{offered['appointment_id']}/confirm", json={}, headers=nurse
    )
    assert confirmed.json()["status"] == "booked"
    assert confirmed.json()["start"] == taken["start"]


async def test_site_scope_and_unknown_site(world: World) -> None:
    await world.set_schedule()
    mine = (
        await world.client.post(
            "/appointments", json=slot(world, tomorrow_at(8)), headers=world.nurse()
        )
    ).json()
    elsewhere = {"Authorization": f"Bearer {world.mint('nurse', site_id='another-site')}"}
    hidden = await world.client.get(f"/appointments/{mine['id']}", headers=elsewhere)
    assert hidden.status_code == 404
    unknown = await world.client.post(
        "/appointments",
        json=slot(world, tomorrow_at(8, 30), site_id="nowhere"),
        headers=world.coordinator(),
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "site_id"
    ignored = await world.client.post(
        "/appointments",
        json=slot(world, tomorrow_at(8, 30), site_id="nowhere"),
        headers=world.nurse(),
    )
    assert ignored.json()["site_id"] == world.site_id
