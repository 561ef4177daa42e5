"""A cabin is booked only while its site is open: hours from a real directory snapshot,
bookings through the HTTP app and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from maillage.directory.v1 import events_pb2 as directory

if TYPE_CHECKING:
    from conftest import World

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def day_at(days_ahead: int, hour: int, minute: int = 0) -> datetime:
    day = datetime.now(PARIS).date() + timedelta(days=days_ahead)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


async def publish_hours(world: World, version: int, hours: directory.OpeningHours) -> None:
    """A newer snapshot of the world's site, with hours, consumed by booking."""
    snapshot = directory.SiteChanged(
        change=directory.CHANGE_UPDATED,
        version=version,
        site=directory.Site(
            id=world.site_id, name="MSP", departement="67", active=True, opening_hours=hours
        ),
    )
    await world.publish((snapshot, world.site_id))

    async def applied() -> bool:
        stored = await world.scalar("SELECT version FROM sites WHERE id = :i", i=world.site_id)
        return bool(stored == version)

    await world.eventually(applied)


def cabin_slot(world: World, start: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "responder_id": world.responder_id,
        "start": start.isoformat(),
        "resource_id": world.kiosk_id,
        "assistance": "assisted",
        **extra,
    }


async def appointments_of_site(world: World) -> int:
    return int(
        await world.scalar("SELECT count(*) FROM appointments WHERE site_id = :s", s=world.site_id)
    )


def assert_closed(answer: Any) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    errors = answer.json()["errors"]
    assert errors[0]["field"] == "start"
    assert "the site MSP is closed at that time" in errors[0]["reason"]


async def test_a_cabin_is_booked_only_while_its_site_is_open(world: World) -> None:
    closed_day = (datetime.now(PARIS).date() + timedelta(days=2)).isoformat()
    await publish_hours(
        world,
        2,
        directory.OpeningHours(
            timezone="Europe/Paris",
            weekly=[directory.WeeklyOpening(days=EVERY_DAY, opens="08:00", closes="12:15")],
            exceptions=[directory.OpeningException(date=closed_day, reason="fermeture")],
        ),
    )
    await world.set_schedule()
    nurse = world.nurse()

    inside = await world.client.post(
        "/appointments", json=cabin_slot(world, day_at(1, 10)), headers=nurse
    )
    assert inside.status_code == 201, inside.text

    outside = await world.client.post(
        "/appointments", json=cabin_slot(world, day_at(1, 13)), headers=nurse
    )
    assert_closed(outside)
    across_closing = await world.client.post(
        "/appointments",
        json=cabin_slot(world, day_at(1, 12)),  # ends 12:30, after closing
        headers={**nurse, "Idempotency-Key": "closing"},
    )
    assert_closed(across_closing)
    held_outside = await world.client.post(
        "/appointments", json=cabin_slot(world, day_at(1, 18), hold=True), headers=nurse
    )
    assert_closed(held_outside)
    exception_day = await world.client.post(
        "/appointments", json=cabin_slot(world, day_at(2, 10)), headers=nurse
    )
    assert_closed(exception_day)
    assert await appointments_of_site(world) == 1

    moved_out = await world.client.post(
        f"/appointments/{inside.json()['id']}/reschedule",
        json={"start": day_at(1, 14).isoformat()},
        headers=nurse,
    )
    assert_closed(moved_out)
    kept = await world.client.get(f"/appointments/{inside.json()['id']}", headers=nurse)
    assert kept.json()["start"] == inside.json()["start"]
    moved_in = await world.client.post(
        f"/appointments/{inside.json()['id']}/reschedule",
        json={"start": day_at(1, 11).isoformat()},
        headers=nurse,
    )
    assert moved_in.status_code == 200, moved_in.text

    # Without a cabin the site's hours do not apply (the responder's schedule does).
    no_cabin = await world.client.post(
        "/appointments",
        json={"responder_id": world.responder_id, "start": day_at(1, 15).isoformat()},
        headers=nurse,
    )
    assert no_cabin.status_code == 201, no_cabin.text


async def test_unknown_hours_do_not_refuse(world: World) -> None:
    await world.set_schedule()
    # The world's site comes from a snapshot without hours: unknown.
    hours = "SELECT opening_hours FROM sites WHERE id = :i"
    assert await world.scalar(hours, i=world.site_id) is None
    before = await world.client.post(
        "/appointments", json=cabin_slot(world, day_at(1, 21)), headers=world.nurse()
    )
    assert before.status_code == 201, before.text
    await publish_hours(world, 2, directory.OpeningHours(note="sur rendez-vous"))
    assert (await world.scalar(hours, i=world.site_id))["note"] == "sur rendez-vous"
    answer = await world.client.post(
        "/appointments", json=cabin_slot(world, day_at(1, 22)), headers=world.nurse()
    )
    assert answer.status_code == 201, answer.text
