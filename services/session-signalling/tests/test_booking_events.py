"""Booking events open and revoke sessions; no-shows and quality (integration)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from signalling_wsclient import Client
from sqlalchemy import func, select
from websockets.asyncio.client import connect

from maillage.booking.v1 import events_pb2 as booking
from maillage.common.v1 import types_pb2
from maillage_common.db.messaging import INBOX
from maillage_common.events import encode_headers
from maillage_session_signalling.db.repositories import SessionRepository
from maillage_session_signalling.db.tables import SESSIONS
from maillage_session_signalling.domain.session import Session

from signalling_testing import LiveService, LiveServiceFactory, session_events

pytestmark = pytest.mark.integration


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _publish(bootstrap: str, message: Message, key: str) -> uuid.UUID:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    event_id = uuid.uuid4()
    await producer.start()
    try:
        headers = encode_headers(
            event_id=event_id,
            event_type=message.DESCRIPTOR.full_name,
            source="maillage/booking",
            subject=key,
            time=datetime.now(UTC),
            traceparent=None,
        )
        topic = "booking.appointments"
        if isinstance(message, booking.ConsultationAccepted):
            topic = "booking.consultations"
        await producer.send_and_wait(
            topic, key=key.encode(), value=message.SerializeToString(), headers=headers
        )
    finally:
        await producer.stop()
    return event_id


async def _handled(app: FastAPI, event_id: uuid.UUID) -> None:
    """Wait until the consumer's inbox holds the event (handled, or deduplicated)."""
    async with asyncio.timeout(60):
        while True:
            async with app.state.runtime.unit_of_work() as uow:
                query = select(INBOX.c.event_id).where(INBOX.c.event_id == event_id)
                if (await uow.session.execute(query)).first() is not None:
                    return
            await asyncio.sleep(0.2)


async def _sessions_of(app: FastAPI, appointment_id: str) -> int:
    async with app.state.runtime.unit_of_work() as uow:
        query = select(func.count()).where(SESSIONS.c.appointment_id == appointment_id)
        return int((await uow.session.execute(query)).scalar_one())


async def _session_for(app: FastAPI, appointment_id: str) -> Session:
    """Poll the service's database until the consumer has applied the event."""
    async with asyncio.timeout(60):
        while True:
            async with app.state.runtime.unit_of_work() as uow:
                found = await SessionRepository(uow.session).active_for_appointment(
                    appointment_id, for_update=False
                )
            if found is not None:
                return found
            await asyncio.sleep(0.2)


def _booked(
    appointment_id: str, start: datetime, consultation_id: str = ""
) -> booking.AppointmentBooked:
    return booking.AppointmentBooked(
        appointment_id=appointment_id,
        site_id="site-b",
        responder_id="pro-b",
        specialty_code="SM54",
        act=types_pb2.ACT_TELECONSULTATION,
        departement="23",
        patient_ref="pref-1",
        mode=types_pb2.CONSULTATION_MODE_SCHEDULED,
        assistance=types_pb2.ASSISTANCE_ASSISTED,
        start=_ts(start),
        end=_ts(start + timedelta(minutes=20)),
        consultation_id=consultation_id,
    )


async def test_booked_appointment_schedules_and_cancellation_revokes(
    live_service: LiveServiceFactory, kafka_bootstrap_servers: str
) -> None:
    appointment = f"apt-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC) + timedelta(hours=1)
    async with live_service() as svc:
        await _publish(kafka_bootstrap_servers, _booked(appointment, start), appointment)
        session = await _session_for(svc.app, appointment)
        # A duplicate booking does not create a second session.
        duplicate = _booked(appointment, start)
        await _handled(svc.app, await _publish(kafka_bootstrap_servers, duplicate, appointment))
        assert await _sessions_of(svc.app, appointment) == 1
        sid = str(session.session_id)
        kiosk = svc.auth("kiosk", subject="k1", site_id="site-b")
        # The site's kiosk finds the session of its appointment; another site's cannot.
        lookup = {"appointment_id": appointment}
        found = await svc.client.get("/v1/sessions", params=lookup, headers=kiosk)
        assert (found.status_code, found.json()["session_id"]) == (200, sid)
        stranger = svc.auth("kiosk", subject="k9", site_id="site-z")
        hidden = await svc.client.get("/v1/sessions", params=lookup, headers=stranger)
        assert hidden.status_code == 404
        granted = await svc.client.post(f"/v1/sessions/{sid}/join-token", headers=kiosk)
        assert granted.status_code == 200
        token = granted.json()

        cancel = booking.AppointmentCancelled(appointment_id=appointment, site_id="site-b")
        await _publish(kafka_bootstrap_servers, cancel, appointment)
        async with asyncio.timeout(60):
            while (await svc.client.get(f"/v1/sessions/{sid}", headers=kiosk)).json()[
                "state"
            ] != "revoked":
                await asyncio.sleep(0.2)
        refused = await svc.client.post(f"/v1/sessions/{sid}/join-token", headers=kiosk)
        assert refused.status_code == 409
        revoked = await svc.client.get("/v1/sessions", params=lookup, headers=kiosk)
        assert revoked.status_code == 404
        # The token issued before the cancellation no longer opens the room.
        async with connect(svc.ws_url(token)) as ws:
            client = Client(ws)
            await client.send({"type": "join", "token": token["token"]})
            assert await client.closed_with() == 4001
        # One service boot for every booking scenario (each boot costs seconds).
        await _reschedule_revokes_the_old_room_and_opens_a_new_session(svc, kafka_bootstrap_servers)
        await _accepted_consultation_and_its_booking_share_one_session(svc, kafka_bootstrap_servers)

    events = await session_events(kafka_bootstrap_servers, sid, {"SessionScheduled"})
    scheduled = events["SessionScheduled"]
    assert len(scheduled) == 1
    assert (scheduled[0].appointment_id, scheduled[0].specialty_code) == (appointment, "SM54")
    assert scheduled[0].WhichOneof("origin") == "appointment_id"


async def _reschedule_revokes_the_old_room_and_opens_a_new_session(
    svc: LiveService, kafka_bootstrap_servers: str
) -> None:
    appointment = f"apt-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC) + timedelta(hours=1)
    await _publish(kafka_bootstrap_servers, _booked(appointment, start), appointment)
    old = await _session_for(svc.app, appointment)
    moved = booking.AppointmentRescheduled(
        appointment_id=appointment,
        site_id="site-b",
        responder_id="pro-b",
        start=_ts(start + timedelta(days=1)),
        end=_ts(start + timedelta(days=1, minutes=20)),
    )
    await _publish(kafka_bootstrap_servers, moved, appointment)
    async with asyncio.timeout(60):
        while (new := await _session_for(svc.app, appointment)).session_id == old.session_id:
            await asyncio.sleep(0.2)
    assert new.room_id != old.room_id
    assert new.lifecycle.scheduled_start == start + timedelta(days=1)


async def _accepted_consultation_and_its_booking_share_one_session(
    svc: LiveService, kafka_bootstrap_servers: str
) -> None:
    appointment = f"apt-{uuid.uuid4().hex[:8]}"
    consultation = f"con-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    accepted = booking.ConsultationAccepted(
        consultation_id=consultation,
        site_id="site-b",
        responder_id="pro-b",
        accepted_at=_ts(now),
        appointment_id=appointment,
    )
    await _publish(kafka_bootstrap_servers, accepted, consultation)
    session = await _session_for(svc.app, appointment)
    assert session.context.consultation_id == consultation
    assert session.context.mode == 2  # on demand
    booked = _booked(appointment, now, consultation_id=consultation)
    await _handled(svc.app, await _publish(kafka_bootstrap_servers, booked, appointment))
    assert await _sessions_of(svc.app, appointment) == 1


async def test_quality_reports_then_a_side_missing_after_the_grace_period_is_a_no_show(
    live_service: LiveServiceFactory, kafka_bootstrap_servers: str
) -> None:
    site = f"site-{uuid.uuid4().hex[:6]}"
    # The periodic scan is off; the test runs it once the kiosk is waiting (no timing race).
    async with live_service(noshow_grace_seconds=1, noshow_scan_interval_seconds=3600) as svc:
        start = datetime.now(UTC) - timedelta(seconds=30)
        sid = (await svc.create_session(site_id=site, responder="pro-a", start=start))["session_id"]
        kiosk_pass = await svc.join_token(sid, "kiosk", subject="k1", site_id=site)
        kiosk, joined = await Client.join(svc.ws_url(kiosk_pass), kiosk_pass["token"])
        assert joined["state"] == "waiting"

        stats = {"rtt_ms": 420, "jitter_ms": 60, "loss_ratio": 0.08, "bitrate_kbps": 350}
        await kiosk.send({"type": "quality", **stats})
        quality = await session_events(
            kafka_bootstrap_servers, sid, {"SessionQualityReported"}, topic="sessions.quality"
        )
        report = quality["SessionQualityReported"][0]
        assert (report.rtt_ms, report.level) == (420, 3)  # QUALITY_LEVEL_POOR
        assert report.participant.participant_id == kiosk_pass["participant_id"]
        read = await svc.client.get(f"/v1/sessions/{sid}", headers=svc.auth("coordinator"))
        assert read.json()["participants"][0]["quality_level"] == "poor"

        assert await svc.app.state.signalling.no_show_scan() >= 1
        assert (await kiosk.expect("state"))["state"] == "noshow"
        assert await kiosk.closed_with() == 4001
    events = await session_events(kafka_bootstrap_servers, sid, {"SessionNoShow"})
    noshow = events["SessionNoShow"][0]
    assert noshow.missing_side == 2  # NO_SHOW_SIDE_RESPONDER
