"""Fixtures of the statistics tests: a generated event history with known answers.

Three operational sites in one (unique) département, Jan-Mar 2026, with every answer
computed by hand below (not by the code under test).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from maillage.booking.v1 import events_pb2 as booking
from maillage.common.v1 import types_pb2 as common
from maillage.directory.v1 import events_pb2 as directory
from maillage.session_signalling.v1 import events_pb2 as sessions
from maillage.telemetry.v1 import events_pb2 as telemetry
from maillage_common.events.envelope import Event
from maillage_common.runtime import Runtime
from maillage_statistics.handlers import project_event
from maillage_statistics.use_cases.indicators import INDICATORS

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)


def ts(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


def dur(seconds: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(seconds=seconds))
    return duration


@dataclass
class History:
    """Events in causal order, with the answers the indicators must give."""

    departement: str
    events: list[Event[Any]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)

    def add(self, message: Message, subject: str, at: datetime) -> None:
        self.events.append(make_event(message, subject, at))

    def shuffled_with_duplicates(self, seed: int = 7) -> list[Event[Any]]:
        """Every event once or twice (same ce_id), in a random order."""
        rng = random.Random(seed)
        events = self.events + [e for e in self.events if rng.random() < 0.5]
        rng.shuffle(events)
        return events


def make_event(message: Message, subject: str, at: datetime) -> Event[Any]:
    return Event(
        id=uuid.uuid4(),
        type=message.DESCRIPTOR.full_name,
        source="maillage/test",
        subject=subject,
        time=at,
        message=message,
    )


def _id() -> str:
    return str(uuid.uuid4())


def _site(history: History, key: str, version: int, at: datetime, **fields: Any) -> None:
    site = directory.Site(id=history.ids[key], departement=history.departement, **fields)
    history.add(
        directory.SiteChanged(change=1, version=version, changed_at=ts(at), site=site),
        history.ids[key],
        at,
    )


def build_history(departement: str) -> History:
    h = History(departement)
    for key in ("S1", "S2", "S3", "S4", "R1", "R2", "R3", "R4", "K1", "K2"):
        h.ids[key] = _id()
    t0 = datetime(2025, 12, 1, tzinfo=UTC)
    cat = directory.SiteCategory
    dep = directory.DeploymentModel
    # S1: created as an inactive médico-social site, then v2 an active EHPAD (v2 wins).
    _site(h, "S1", 1, t0, name="S1", category=cat.SITE_CATEGORY_MEDICO_SOCIAL, active=False)
    _site(
        h, "S1", 2, t0 + timedelta(days=1), name="S1", category=cat.SITE_CATEGORY_EHPAD,
        deployment_model=dep.DEPLOYMENT_MODEL_HOTSPOT_DEDIE, commune_insee="08001",
        rural=True, under_served=True, active=True,
    )  # fmt: skip
    _site(
        h, "S2", 1, t0, name="S2", category=cat.SITE_CATEGORY_MSP, commune_insee="08002",
        deployment_model=dep.DEPLOYMENT_MODEL_SITE_CLASSIQUE, active=True,
    )  # fmt: skip
    _site(
        h, "S3", 1, t0, name="S3", category=cat.SITE_CATEGORY_PHARMACIE, commune_insee="08003",
        deployment_model=dep.DEPLOYMENT_MODEL_HOTSPOT_MUTUALISE, rural=True, active=True,
    )  # fmt: skip
    _site(h, "S4", 1, t0, name="S4", category=cat.SITE_CATEGORY_MEDICO_SOCIAL, active=True)
    _site(h, "S4", 2, t0 + timedelta(days=2), name="S4", active=False)
    for key, specialty in (("R1", "SM54"), ("R2", "SM54"), ("R3", "SM15"), ("R4", "SM42")):
        professional = directory.Professional(
            id=h.ids[key], family_name="Doe", specialty_codes=[specialty], active=True
        )
        h.add(
            directory.ProfessionalChanged(change=1, version=1, professional=professional),
            h.ids[key],
            t0,
        )
    # S1: 4 assisted scheduled teleconsultations in each of Jan, Feb, Mar (SM54, R1/R2),
    # each booked then fulfilled; live 600 s.
    for month in (1, 2, 3):
        for n in range(4):
            start = datetime(2026, month, 5 + n, 10, tzinfo=UTC)
            responder = "R1" if n % 2 else "R2"
            _scheduled_session(h, "S1", responder, "SM54", start, live=600)
    # S1, 12 Feb: the video never started, the call went on by phone and the nurse recorded
    # the appointment fulfilled by hand (no session names it): a teleconsultation too.
    _appointment(h, "S1", "R1", datetime(2026, 2, 12, 10, tzinfo=UTC), outcome="fulfil")
    # Appointments that did not happen: two cancelled, one no-show.
    for n in range(2):
        _appointment(h, "S1", "R1", datetime(2026, 2, 20 + n, 9, tzinfo=UTC), outcome="cancel")
    _appointment(h, "S1", "R1", datetime(2026, 3, 20, 9, tzinfo=UTC), outcome="no_show")
    # A failed session (not a teleconsultation).
    failed = _id()
    h.add(
        sessions.SessionFailed(
            session_id=failed, site_id=h.ids["S1"], act=common.ACT_TELECONSULTATION,
            departement=h.departement, specialty_code="SM54",
            failed_at=ts(datetime(2026, 2, 25, tzinfo=UTC)),
            reason=sessions.FAILURE_REASON_NETWORK,
        ),
        failed, datetime(2026, 2, 25, tzinfo=UTC),
    )  # fmt: skip
    # S2: two on-demand simple teleconsultations in Feb (SM15, R3), accepted in 60 and 120 s;
    # a third request expired. Live 900 s.
    for n, accept in enumerate((60, 120)):
        requested = datetime(2026, 2, 10 + n, 14, tzinfo=UTC)
        _on_demand(h, "S2", "R3", "SM15", requested, accept)
    expired = _id()
    at = datetime(2026, 2, 15, 14, tzinfo=UTC)
    h.add(
        booking.ConsultationRequested(
            consultation_id=expired, site_id=h.ids["S2"], specialty_code="SM15",
            act=common.ACT_TELECONSULTATION, departement=h.departement,
            assistance=common.ASSISTANCE_SIMPLE, requested_at=ts(at),
        ),
        expired, at,
    )  # fmt: skip
    h.add(
        booking.ConsultationExpired(
            consultation_id=expired, site_id=h.ids["S2"], specialty_code="SM15",
            act=common.ACT_TELECONSULTATION, departement=h.departement,
            requested_at=ts(at), expired_at=ts(at + timedelta(minutes=15)), offers_made=3,
        ),
        expired, at + timedelta(minutes=15),
    )  # fmt: skip
    # Tele-expertises: S2 one (SM15, R3, 1800 s for 3600 s asked); S3 three (SM42, R4).
    _expertise(h, "S2", "R3", "SM15", response=1800, delay=3600)
    for response in (3600, 7200, 90000):
        _expertise(h, "S3", "R4", "SM42", response=response, delay=86400)
    _telemetry(h)
    return h


def _context(h: History, site: str, responder: str, specialty: str) -> dict[str, Any]:
    return {
        "site_id": h.ids[site],
        "responder_id": h.ids[responder],
        "specialty_code": specialty,
        "act": common.ACT_TELECONSULTATION,
        "departement": h.departement,
    }


def _appointment(h: History, site: str, responder: str, start: datetime, *, outcome: str) -> str:
    appointment = _id()
    context = {
        "appointment_id": appointment,
        **_context(h, site, responder, "SM54"),
        "mode": common.CONSULTATION_MODE_SCHEDULED,
        "assistance": common.ASSISTANCE_ASSISTED,
        "start": ts(start),
        "end": ts(start + timedelta(minutes=20)),
    }
    booked_at = start - timedelta(days=3)
    h.add(booking.AppointmentBooked(**context, booked_at=ts(booked_at)), appointment, booked_at)
    later = start - timedelta(days=1)
    if outcome == "cancel":
        h.add(booking.AppointmentCancelled(**context, cancelled_at=ts(later)), appointment, later)
    elif outcome == "no_show":
        h.add(booking.AppointmentNoShow(**context, recorded_at=ts(start)), appointment, start)
    else:
        h.add(booking.AppointmentFulfilled(**context, recorded_at=ts(start)), appointment, start)
    return appointment


def _scheduled_session(
    h: History, site: str, responder: str, specialty: str, start: datetime, *, live: int
) -> None:
    appointment = _appointment(h, site, responder, start, outcome="fulfil")
    session = _id()
    context = {
        "session_id": session,
        "appointment_id": appointment,
        **_context(h, site, responder, specialty),
        "mode": common.CONSULTATION_MODE_SCHEDULED,
        "assistance": common.ASSISTANCE_ASSISTED,
    }
    end = start + timedelta(seconds=live)
    h.add(sessions.SessionScheduled(**context, scheduled_start=ts(start)), session, start)
    h.add(sessions.SessionStarted(**context, started_at=ts(start)), session, start)
    h.add(
        sessions.SessionEnded(**context, started_at=ts(start), ended_at=ts(end), live_seconds=live),
        session,
        end,
    )


def _on_demand(
    h: History, site: str, responder: str, specialty: str, requested: datetime, accept: int
) -> None:
    consultation = _id()
    base = {
        "consultation_id": consultation,
        "site_id": h.ids[site],
        "specialty_code": specialty,
        "act": common.ACT_TELECONSULTATION,
        "departement": h.departement,
        "assistance": common.ASSISTANCE_SIMPLE,
        "requested_at": ts(requested),
    }
    accepted = requested + timedelta(seconds=accept)
    h.add(booking.ConsultationRequested(**base), consultation, requested)
    h.add(
        booking.ConsultationAccepted(
            **{**base, "responder_id": h.ids[responder]},
            accepted_at=ts(accepted),
            time_to_accept=dur(accept),
        ),
        consultation,
        accepted,
    )
    session = _id()
    context = {
        "session_id": session,
        "consultation_id": consultation,
        **_context(h, site, responder, specialty),
        "mode": common.CONSULTATION_MODE_ON_DEMAND,
        "assistance": common.ASSISTANCE_SIMPLE,
    }
    end = accepted + timedelta(seconds=900)
    h.add(sessions.SessionStarted(**context, started_at=ts(accepted)), session, accepted)
    h.add(
        sessions.SessionEnded(
            **context, started_at=ts(accepted), ended_at=ts(end), live_seconds=900
        ),
        session,
        end,
    )


def _expertise(
    h: History, site: str, responder: str, specialty: str, *, response: int, delay: int
) -> None:
    expertise = _id()
    requested = datetime(2026, 2, 3, 8, tzinfo=UTC)
    base = {
        "expertise_id": expertise,
        "site_id": h.ids[site],
        "responder_id": h.ids[responder],
        "specialty_code": specialty,
        "act": common.ACT_TELEEXPERTISE,
        "departement": h.departement,
        "requested_at": ts(requested),
        "requested_response_delay": dur(delay),
    }
    answered = requested + timedelta(seconds=response)
    h.add(booking.ExpertiseRequested(**base), expertise, requested)
    h.add(
        booking.ExpertiseAnswered(**base, answered_at=ts(answered), response_time=dur(response)),
        expertise,
        answered,
    )
    h.add(
        booking.ExpertiseClosed(
            **base, closed_at=ts(answered), outcome=booking.EXPERTISE_OUTCOME_ANSWERED
        ),
        expertise,
        answered,
    )


def _telemetry(h: History) -> None:
    now = datetime.now(UTC)
    d = h.departement
    for kiosk, seen in (("K1", now), ("K2", now - timedelta(hours=1))):
        for beat in (seen - timedelta(minutes=2), seen):
            h.add(
                telemetry.KioskHeartbeatReceived(
                    kiosk_id=h.ids[kiosk], site_id=h.ids["S1"], departement=d,
                    status=telemetry.KIOSK_STATUS_READY, received_at=ts(beat),
                ),
                h.ids[kiosk], beat,
            )  # fmt: skip
    measured = datetime(2026, 3, 2, 9, tzinfo=UTC)
    items = [
        telemetry.Measurement(
            measurement_id=_id(), kiosk_id=h.ids["K1"], site_id=h.ids["S1"],
            loinc_code=code, measured_at=ts(measured), abnormal=code == "59408-5",
        )
        for code in ("8310-5", "59408-5", "8310-5")
    ]  # fmt: skip
    # The kiosk resends the same batch: same measurement ids, a new event.
    for _ in range(2):
        batch = telemetry.MeasurementBatchIngested(
            batch_id=_id(), kiosk_id=h.ids["K1"], site_id=h.ids["S1"], departement=d,
            ingested_at=ts(measured), measurements=items,
        )  # fmt: skip
        h.add(batch, h.ids["K1"], measured)
    raised = datetime(2026, 3, 3, tzinfo=UTC)
    for cleared in (True, False):
        alert = _id()
        fields = {
            "alert_id": alert,
            "kind": telemetry.ALERT_KIND_KIOSK_OFFLINE,
            "severity": telemetry.SEVERITY_WARNING,
            "kiosk_id": h.ids["K2"],
            "site_id": h.ids["S1"],
            "departement": d,
            "raised_at": ts(raised),
        }
        h.add(telemetry.AlertRaised(**fields), alert, raised)
        if cleared:
            at = raised + timedelta(hours=1)
            h.add(telemetry.AlertCleared(**fields, cleared_at=ts(at)), alert, at)
    for level in (common.QUALITY_LEVEL_GOOD, common.QUALITY_LEVEL_GOOD, common.QUALITY_LEVEL_POOR):
        session = _id()
        h.add(
            sessions.SessionQualityReported(
                session_id=session, site_id=h.ids["S1"], departement=d, level=level,
                measured_at=ts(measured), rtt_ms=40,
            ),
            session, measured,
        )  # fmt: skip
    h.add(
        telemetry.CallQualityReported(
            kiosk_id=h.ids["K1"], site_id=h.ids["S1"], departement=d,
            level=common.QUALITY_LEVEL_EXCELLENT, measured_at=ts(measured),
        ),
        h.ids["K1"], measured,
    )  # fmt: skip


EXPECTED: dict[str, Any] = {
    "teleconsultations": [
        {"mode": "on_demand", "assistance": "simple", "teleconsultations": 2},
        {"mode": "scheduled", "assistance": "assisted", "teleconsultations": 13},
    ],
    "teleconsultations-monthly": [
        {"month": "2026-01", "teleconsultations": 4},
        {"month": "2026-02", "teleconsultations": 7},
        {"month": "2026-03", "teleconsultations": 4},
    ],
    "teleexpertises": [{"outcome": "answered", "teleexpertises": 4}],
    "telemonitoring": [
        {"loinc_code": "59408-5", "measurements": 1, "abnormal": 1},
        {"loinc_code": "8310-5", "measurements": 2, "abnormal": 0},
    ],
    "site-typology": [
        {"category": "ehpad", "sites": 1, "share": 0.3333},
        {"category": "msp", "sites": 1, "share": 0.3333},
        {"category": "pharmacie", "sites": 1, "share": 0.3333},
    ],
    "site-act-types": [
        {"act_type": "assisted_teleconsultation", "sites": 1, "share": 0.3333},
        {"act_type": "simple_teleconsultation", "sites": 1, "share": 0.3333},
        {"act_type": "teleexpertise", "sites": 1, "share": 0.3333},
        {"act_type": "no_activity", "sites": 0, "share": None},
    ],
    "usage-status": [
        {"status": "regular", "sites": 1, "share": 0.3333},
        {"status": "transition", "sites": 1, "share": 0.3333},
        {"status": "none", "sites": 1, "share": 0.3333},
    ],
    "specialties": [
        {"specialty_code": "SM15", "sites": 1, "responders": 1},
        {"specialty_code": "SM42", "sites": 1, "responders": 1},
        {"specialty_code": "SM54", "sites": 1, "responders": 2},
    ],
    "alerts": [{"kind": "kiosk_offline", "severity": "warning", "raised": 2, "open": 1}],
}
"""Rows the indicators must return for a history's département over [SINCE, UNTIL)."""

EXPECTED_QUALITY: dict[str, Any] = {
    "time_to_accept_p50_seconds": 90.0,
    "time_to_accept_p90_seconds": 114.0,
    "on_demand_expired": 1,
    "appointments_booked": 16,
    "appointments_cancelled": 2,
    "appointments_fulfilled": 13,
    "appointments_no_show": 1,
    "cancellation_rate": 0.125,
    "no_show_rate": 0.0714,
    "session_duration_p50_seconds": 600.0,
    "session_duration_p90_seconds": 810.0,
    "failed_sessions": 1,
    "expertise_response_p50_seconds": 5400.0,
    "expertises_answered": 4,
    "expertises_answered_in_time": 3,
    "expertise_in_time_rate": 0.75,
}


class Checks:
    """Helpers the integration tests share (a fixture: test modules import nothing local)."""

    expected = EXPECTED
    since = SINCE
    until = UNTIL
    event = staticmethod(make_event)
    # `service_app(PACKAGE, **checks.without_broker)`: an instance whose consumer cannot fold
    # other tests' events into the tables a test folds its own into, in-process.
    without_broker: dict[str, Any] = {"wait_ready": False, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}

    @staticmethod
    def hand_fulfilled_and_its_session() -> tuple[str, Event[Any], Event[Any]]:
        """An appointment recorded fulfilled by hand, and the ended session that names it."""
        appointment, session = _id(), _id()
        start = datetime(2026, 2, 12, 10, tzinfo=UTC)
        stamp, end = Timestamp(), Timestamp()
        stamp.FromDatetime(start)
        end.FromDatetime(start + timedelta(minutes=15))
        context: dict[str, Any] = {
            "site_id": _id(), "responder_id": _id(),
            "specialty_code": "SM54", "act": common.ACT_TELECONSULTATION, "departement": "Z9",
            "mode": common.CONSULTATION_MODE_SCHEDULED, "assistance": common.ASSISTANCE_ASSISTED,
        }  # fmt: skip
        fulfilled = booking.AppointmentFulfilled(
            appointment_id=appointment, **context, start=stamp, recorded_at=stamp
        )
        ended = sessions.SessionEnded(
            session_id=session, appointment_id=appointment, **context,
            started_at=stamp, ended_at=end, live_seconds=900,
        )  # fmt: skip
        return (
            appointment,
            make_event(fulfilled, appointment, start),
            make_event(ended, session, start),
        )

    @staticmethod
    async def apply_in_process(runtime: Runtime, events: Sequence[Event[Any]]) -> None:
        for event in events:
            async with runtime.unit_of_work() as uow:
                await project_event(event, uow)
                await uow.commit()

    @staticmethod
    async def indicators(client: httpx.AsyncClient, token: str, departement: str) -> dict[str, Any]:
        """Every indicator and the observatory for the département over the history's period."""
        query = {"departement": departement, "since": SINCE.isoformat(), "until": UNTIL.isoformat()}
        headers = {"Authorization": f"Bearer {token}"}
        found: dict[str, Any] = {}
        for name in sorted(INDICATORS):
            response = await client.get(f"/v1/indicators/{name}", params=query, headers=headers)
            assert response.status_code == 200, response.text
            found[name] = response.json()["rows"]
        found["observatory"] = (
            await client.get("/v1/observatory", params=query, headers=headers)
        ).json()
        return found

    @staticmethod
    def assert_known_answers(found: dict[str, Any]) -> None:
        for name, rows in EXPECTED.items():
            assert found[name] == rows, name
        quality = found["quality"][0]
        for key, value in EXPECTED_QUALITY.items():
            # Percentiles come from log-spaced histograms: within ±2.5 % of the exact value.
            tolerance = 0.025 if key.endswith("_seconds") else 1e-6
            assert quality[key] == pytest.approx(value, rel=tolerance), key
        assert [row["status"] for row in found["site-usage"]] != []
        assert found["sites-by-departement"][0]["sites"] == 3
        territory = found["territory"][0]
        assert (territory["rural_sites"], territory["under_served_sites"]) == (2, 1)
        assert territory["rural_share"] == 0.6667
        fleet = found["fleet"][0]
        assert (fleet["kiosks_online"], fleet["kiosks_reporting"], fleet["alerts_open"]) == (
            1,
            2,
            1,
        )
        levels = {(r["source"], r["level"]): r["samples"] for r in found["call-quality"]}
        assert levels == {("kiosk", "excellent"): 1, ("server", "good"): 2, ("server", "poor"): 1}
        summary = found["observatory"]
        assert summary["sites_deployed"] == 3
        assert summary["teleconsultations"]["total"] == 15
        assert summary["teleconsultations"]["monthly_average"] == 5.0
        assert summary["general_medicine_site_share"] == 0.3333


@pytest.fixture
def history() -> Callable[[], History]:
    """`history()` → a fresh history in a département code no other test uses."""

    def make() -> History:
        return build_history("Z" + uuid.uuid4().hex[:2].upper())

    return make


@pytest.fixture
def checks() -> Checks:
    return Checks()
