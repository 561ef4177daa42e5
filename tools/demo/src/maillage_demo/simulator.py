"""Running a plan against the platform, through its public HTTP and WebSocket APIs only.

Time: appointments are booked on real calendar days (simulated day d is the (d+1)-th day
from today, Europe/Paris), because booking only offers future slots; everything else — the
calls, on-demand requests, measurements, the kiosk outage — happens now, paced by `speed`
(simulated seconds per real second; 0 = as fast as the platform answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import httpx

from maillage_demo.agents import PatientSide, ResponderBot, SessionFailedError, run_call
from maillage_demo.client import DemoError, Endpoints, Tokens, call
from maillage_demo.plan import (
    Expertise,
    KioskOutage,
    Measurements,
    OnDemand,
    Plan,
    ResponderPlan,
    Scheduled,
    SitePlan,
)

PARIS = ZoneInfo("Europe/Paris")
SECONDS_PER_DAY = 86_400
SOFTWARE_VERSION = "maillage-demo-kiosk/1.0"
_STILL_PROPAGATING = (403, 404, 409, 422)

Progress = Callable[[str], None]
# Called before each action with (day, index): fault drills crash services there.
BeforeAction = Callable[[int, int], Awaitable[None]]


@dataclass
class Report:
    """What the simulator did (compared with the plan's expectations and the observatory)."""

    sites: int = 0
    responders: int = 0
    kiosks: int = 0
    scheduled_teleconsultations: int = 0
    on_demand_teleconsultations: int = 0
    assisted_teleconsultations: int = 0
    cancellations: int = 0
    no_shows: int = 0
    expertises: int = 0
    expertises_answered: int = 0
    expertises_rejected: int = 0
    measurements: int = 0
    kiosk_outages: int = 0
    heartbeats: int = 0
    media_frames: int = 0
    device_readings: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def teleconsultations(self) -> int:
        return self.scheduled_teleconsultations + self.on_demand_teleconsultations


@dataclass(frozen=True, slots=True)
class _Ids:
    sites: dict[str, str]
    kiosks: dict[str, str]
    responders: dict[str, str]


class Simulator:
    """`async with Simulator(...) as sim: report = await sim.run()` — kiosks keep sending
    heartbeats until the block exits, so the fleet stays online while results are read."""

    def __init__(
        self,
        plan: Plan,
        endpoints: Endpoints,
        tokens: Tokens,
        *,
        speed: float = 0.0,
        concurrency: int = 3,
        heartbeat_seconds: float = 2.0,
        progress: Progress = lambda line: None,
        before_action: BeforeAction | None = None,
    ) -> None:
        self.plan = plan
        self.endpoints = endpoints
        self.tokens = tokens
        self.speed = speed
        self.heartbeat_seconds = heartbeat_seconds
        self.progress = progress
        self._before_action = before_action
        self.report = Report()
        self._calls = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(timeout=30.0, trust_env=False)
        self._ids = _Ids({}, {}, {})
        self._codes: dict[str, str] = {}
        self._silent: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._heartbeats: asyncio.Task[None] | None = None
        self._first_day = datetime.now(PARIS).date() + timedelta(days=1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        tasks = [*self._background, *([self._heartbeats] if self._heartbeats else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    # --- the run --------------------------------------------------------------------------

    async def run(self) -> Report:
        await self.load_region()
        self._heartbeats = asyncio.create_task(self._heartbeat_loop())
        started = asyncio.get_running_loop().time()
        for day in self.plan.days:
            self.progress(f"day {day.day + 1}/{len(self.plan.days)}: {len(day.actions)} actions")
            for index, action in enumerate(day.actions):
                await self._pace(started, day.day, index, len(day.actions))
                if self._before_action is not None:
                    await self._before_action(day.day, index)
                await self._act(action, day.day)
                if (index + 1) % 25 == 0:
                    self.progress(f"  {index + 1}/{len(day.actions)} actions: {self._tally()}")
            self.progress(f"day {day.day + 1} done: {self._tally()}")
        while self._background:
            await asyncio.gather(*list(self._background))
        if self.report.failures:
            raise DemoError("; ".join(self.report.failures))
        return self.report

    async def settle_background(self) -> None:
        """Wait until the calls (and the outage) already started are over: a fault drill
        that restarts session-signalling does it between calls, not in the middle of one."""
        while self._background:
            await asyncio.gather(*list(self._background))

    async def _pace(self, started: float, day: int, index: int, count: int) -> None:
        if self.speed <= 0:
            return
        simulated = day * SECONDS_PER_DAY + SECONDS_PER_DAY * (index + 1) / (count + 1)
        delay = started + simulated / self.speed - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _tally(self) -> str:
        r = self.report
        return (
            f"{r.teleconsultations} teleconsultations ({r.on_demand_teleconsultations} on demand),"
            f" {r.cancellations} cancelled, {r.no_shows} no-shows, {r.expertises} tele-expertises,"
            f" {r.measurements} measurements, {r.media_frames} media frames"
        )

    async def _act(self, action: Any, day: int) -> None:
        match action:
            case Scheduled():
                await self._scheduled(action, day)
            case OnDemand():
                await self._on_demand(action)
            case Expertise():
                await self._expertise(action)
            case Measurements():
                await self._measurements(action)
            case KioskOutage():
                self._spawn(self._outage(action))
            case _:
                raise AssertionError(f"unknown action {action!r}")

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- loading the region ---------------------------------------------------------------

    async def load_region(self) -> None:
        coordinator = self.tokens.coordinator()
        directory = self.endpoints["directory"]
        limit = asyncio.Semaphore(8)
        reference = await call(
            self._client, "GET", f"{directory}/reference/specialties", headers={}
        )
        self._codes = {s["slug"]: s["code"] for s in reference.json()["specialties"]}

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with limit:
                response = await call(
                    self._client, "POST", directory + path, headers=coordinator, json=body
                )
            result: dict[str, Any] = response.json()
            return result

        sites = await asyncio.gather(
            *(post("/sites", _site_body(s, self._codes)) for s in self.plan.sites)
        )
        for plan_site, created in zip(self.plan.sites, sites, strict=True):
            self._ids.sites[plan_site.key] = created["id"]
        self.report.sites = len(sites)
        kiosk_plans = [(s, k) for s in self.plan.sites for k in s.kiosks]
        kiosks = await asyncio.gather(
            *(
                post("/kiosks", _kiosk_body(self._ids.sites[s.key], k.label, k.devices, k.key))
                for s, k in kiosk_plans
            )
        )
        for (_, kiosk), created in zip(kiosk_plans, kiosks, strict=True):
            self._ids.kiosks[kiosk.key] = created["kiosk"]["id"]
        self.report.kiosks = len(kiosks)
        professionals = await asyncio.gather(
            *(
                post("/professionals", _professional_body(r, self._codes))
                for r in self.plan.responders
            )
        )
        for responder, created in zip(self.plan.responders, professionals, strict=True):
            self._ids.responders[responder.key] = created["id"]
        self.report.responders = len(professionals)
        self.progress(
            f"directory: {len(sites)} sites, {len(kiosks)} kiosks,"
            f" {len(professionals)} responders registered"
        )
        await asyncio.gather(*(self._open_agenda(r, limit) for r in self.plan.responders))
        await asyncio.gather(*(self._grant_consents(s, limit) for s in self.plan.sites))
        await asyncio.gather(
            *(self._pair_devices(s, k.key, k.devices, limit) for s, k in kiosk_plans)
        )
        self.progress(
            "booking: schedules and duty set; telemetry: consents recorded, devices paired"
        )

    async def _open_agenda(self, responder: ResponderPlan, limit: asyncio.Semaphore) -> None:
        """Each responder publishes a weekly schedule (every day 08:00-20:00, Paris time) and
        general practitioners go on duty for on-demand requests."""
        professional_id = self._ids.responders[responder.key]
        headers = self.tokens.responder(professional_id, responder.rpps)
        booking = self.endpoints["booking"]
        schedule = {
            "time_zone": "Europe/Paris",
            "weekly": [{"weekday": d, "start": "08:00", "end": "20:00"} for d in range(7)],
            "slot_minutes": {"teleconsultation": 20, "teleexpertise": 30},
            "window_days": 60,
        }
        async with limit:
            # The responder exists in booking once the directory's event has been consumed.
            await call(
                self._client,
                "PUT",
                f"{booking}/responders/{professional_id}/schedule",
                headers=headers,
                json=schedule,
                retry_on=_STILL_PROPAGATING,
            )
            if responder.on_duty:
                await call(
                    self._client,
                    "PUT",
                    f"{booking}/responders/me/duty",
                    headers=headers,
                    json={"on_duty": True},
                    retry_on=_STILL_PROPAGATING,
                )

    async def _grant_consents(self, site: SitePlan, limit: asyncio.Semaphore) -> None:
        if not site.kiosks:
            return
        site_id = self._ids.sites[site.key]
        for number in range(1, self.plan.patients_per_site + 1):
            async with limit:
                await call(
                    self._client,
                    "PUT",
                    f"{self.endpoints['telemetry']}/consents/{self._patient_ref(f'{site.key}-patient-{number}')}",
                    headers=self.tokens.nurse(site_id),
                    json={"granted": True},
                )

    async def _pair_devices(
        self, site: SitePlan, kiosk: str, devices: tuple[str, ...], limit: asyncio.Semaphore
    ) -> None:
        """Each kiosk pairs its peripherals with telemetry (only paired devices may upload);
        a device already paired answers 409, which is what a second pairing should do."""
        kiosk_id = self._ids.kiosks[kiosk]
        headers = self.tokens.kiosk(kiosk_id, self._ids.sites[site.key])
        for device in devices:
            async with limit:
                await call(
                    self._client,
                    "POST",
                    f"{self.endpoints['telemetry']}/kiosks/{kiosk_id}/devices",
                    headers=headers,
                    json={"device_id": f"{kiosk}-{device}", "kind": device},
                    expect=(201, 409),
                    retry_on=(404,),
                )

    def _patient_ref(self, patient: str) -> str:
        # Pseudonymous and stable for a seed, like booking's pt_ references.
        return "pt_demo" + uuid.uuid5(uuid.NAMESPACE_URL, f"{self.plan.seed}/{patient}").hex[:20]

    # --- kiosks ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        kiosks = [(k.key, s.key) for s in self.plan.sites for k in s.kiosks]
        while True:
            round_started = asyncio.get_running_loop().time()
            for kiosk, site in kiosks:
                if kiosk not in self._silent:
                    await self._heartbeat(kiosk, site)
            elapsed = asyncio.get_running_loop().time() - round_started
            await asyncio.sleep(max(0.0, self.heartbeat_seconds - elapsed))

    async def _heartbeat(self, kiosk: str, site: str) -> None:
        site_plan = self.plan.site(site)
        kiosk_plan = next(k for k in site_plan.kiosks if k.key == kiosk)
        body = {
            "status": "ready",
            "software_version": SOFTWARE_VERSION,
            "network_quality": "good",
            "rtt_ms": 40,
            "peripherals": [
                {"kind": device, "device_id": f"{kiosk}-{device}", "status": "ok"}
                for device in kiosk_plan.devices
            ],
            "sent_at": datetime.now(UTC).isoformat(),
        }
        headers = self.tokens.kiosk(self._ids.kiosks[kiosk], self._ids.sites[site])
        with contextlib.suppress(httpx.HTTPError):
            response = await self._client.post(
                f"{self.endpoints['telemetry']}/heartbeats", headers=headers, json=body
            )
            if response.status_code == 202:
                self.report.heartbeats += 1

    async def _kiosk_view(self, kiosk: str) -> dict[str, Any]:
        response = await call(
            self._client,
            "GET",
            f"{self.endpoints['telemetry']}/kiosks/{self._ids.kiosks[kiosk]}",
            headers=self.tokens.coordinator(),
            retry_on=(404,),
        )
        view: dict[str, Any] = response.json()
        return view

    async def _outage(self, action: KioskOutage) -> None:
        """Silence until the fleet watchdog raises the kiosk's offline alert, then heartbeats
        again until the alert is cleared: one alert raised and cleared, whatever the load."""
        await self._until(action.kiosk, "online", lambda view: view["status"] == "online")
        self._silent.add(action.kiosk)
        self.progress(f"kiosk {action.kiosk} ({action.site}) went silent")
        await self._until(action.kiosk, "offline (alert raised)", _offline_alert_open)
        self.progress(f"kiosk {action.kiosk} is offline: the watchdog raised an alert")
        self._silent.discard(action.kiosk)
        await self._heartbeat(action.kiosk, action.site)
        await self._until(
            action.kiosk,
            "back online (alert cleared)",
            lambda view: view["status"] == "online" and not _offline_alert_open(view),
        )
        self.report.kiosk_outages += 1
        self.progress(f"kiosk {action.kiosk} is back online, its alert cleared")

    async def _until(
        self, kiosk: str, wanted: str, reached: Callable[[dict[str, Any]], bool]
    ) -> None:
        deadline = asyncio.get_running_loop().time() + 30 * self.heartbeat_seconds + 30
        while not reached(await self._kiosk_view(kiosk)):
            if asyncio.get_running_loop().time() > deadline:
                raise DemoError(f"kiosk {kiosk} never became {wanted}")
            await asyncio.sleep(self.heartbeat_seconds / 4)

    async def _measurements(self, action: Measurements) -> None:
        site_id = self._ids.sites[action.site]
        kiosk_id = self._ids.kiosks[action.kiosk]
        patient_ref = self._patient_ref(action.patient)
        now = datetime.now(UTC)
        devices = next(
            k.devices for k in self.plan.site(action.site).kiosks if k.key == action.kiosk
        )
        # Normal values only: the demo's one alert is the kiosk outage.
        readings = [
            reading
            for reading in (
                ("oximeter", "59408-5", "%", 97.0),
                ("oximeter", "8867-4", "/min", 72.0),
                ("thermometer", "8310-5", "Cel", 36.8),
                ("scale", "29463-7", "kg", 71.0),
            )
            if reading[0] in devices
        ]
        items = []
        for index in range(action.count):
            device, loinc, unit, value = readings[index % len(readings)]
            items.append(
                {
                    "measurement_id": str(uuid.uuid4()),
                    "device_id": f"{action.kiosk}-{device}",
                    "device_kind": device,
                    "patient_ref": patient_ref,
                    "loinc_code": loinc,
                    "ucum_unit": unit,
                    "value": value + index % 2,
                    # Distinct instants: (device, code, instant) identifies a reading.
                    "measured_at": (now - timedelta(seconds=index)).isoformat(),
                }
            )
        response = await call(
            self._client,
            "POST",
            f"{self.endpoints['telemetry']}/measurements/batch",
            headers=self.tokens.kiosk(kiosk_id, site_id),
            json={"items": items},
            retry_on=(403,),
        )
        verdict = response.json()
        if verdict["accepted"] != action.count:
            self.report.failures.append(f"measurements refused: {verdict}")
        self.report.measurements += verdict["accepted"]

    # --- booking --------------------------------------------------------------------------

    def _day_bounds(self, day: int) -> tuple[datetime, datetime]:
        local: date = self._first_day + timedelta(days=day)
        return (
            datetime.combine(local, time(8), PARIS),
            datetime.combine(local, time(20), PARIS),
        )

    async def _scheduled(self, action: Scheduled, day: int) -> None:
        site = self.plan.site(action.site)
        site_id = self._ids.sites[site.key]
        nurse = self.tokens.nurse(site_id)
        since, until = self._day_bounds(day)
        specialty = self._codes[action.specialty]
        slots = await self._free_slots(nurse, specialty, site.departement, since, until)
        if not slots:
            slots = await self._free_slots(nurse, specialty, None, since, until)
        kiosk_id = self._ids.kiosks[site.kiosks[0].key] if site.kiosks else None
        appointment = None
        for offset in range(len(slots)):
            slot = slots[(action.slot_choice + offset) % len(slots)]
            body: dict[str, Any] = {
                "responder_id": slot["responder_id"],
                "act": "teleconsultation",
                "start": slot["start"],
                "end": slot["end"],
                "assistance": action.assistance,
                "specialty_code": specialty,
            }
            if action.assistance == "assisted" and kiosk_id:
                body["resource_id"] = kiosk_id
            response = await call(
                self._client,
                "POST",
                f"{self.endpoints['booking']}/appointments",
                headers={**nurse, "Idempotency-Key": str(uuid.uuid4())},
                json=body,
                expect=(201, 409),
                retry_on=(422,),
            )
            if response.status_code == 201:
                appointment = response.json()
                break
        if appointment is None:
            self.report.failures.append(f"no free slot for {action}")
            return
        booking = self.endpoints["booking"]
        if action.outcome == "cancelled":
            await call(
                self._client,
                "POST",
                f"{booking}/appointments/{appointment['id']}/cancel",
                headers=nurse,
                json={"reason": "patient_request"},
            )
            self.report.cancellations += 1
        elif action.outcome == "noshow":
            await call(
                self._client,
                "POST",
                f"{booking}/appointments/{appointment['id']}/outcome",
                headers=nurse,
                json={"outcome": "noshow", "missing_side": "patient"},
            )
            self.report.no_shows += 1
        else:
            responder_key = self._responder_key(appointment["responder_id"])
            self._spawn(
                self._call(
                    site,
                    kiosk_id,
                    responder_key,
                    appointment["id"],
                    action.media_seconds,
                    on_demand=False,
                    assisted=action.assistance == "assisted",
                )
            )

    async def _free_slots(
        self,
        headers: dict[str, str],
        specialty: str,
        departement: str | None,
        since: datetime,
        until: datetime,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "from": since.isoformat(),
            "to": until.isoformat(),
            "act": "teleconsultation",
            "specialty": specialty,
            "limit": 20,
        }
        if departement:
            params["departement"] = departement
        response = await call(
            self._client,
            "GET",
            f"{self.endpoints['booking']}/slots",
            headers=headers,
            params=params,
        )
        slots: list[dict[str, Any]] = response.json()
        return slots

    def _responder_key(self, professional_id: str) -> str:
        return next(key for key, value in self._ids.responders.items() if value == professional_id)

    async def _on_demand(self, action: OnDemand) -> None:
        site = self.plan.site(action.site)
        site_id = self._ids.sites[site.key]
        kiosk_id = self._ids.kiosks[action.kiosk]
        booking = self.endpoints["booking"]
        created = await call(
            self._client,
            "POST",
            f"{booking}/consultations",
            headers=self.tokens.kiosk(kiosk_id, site_id),
            json={
                "specialty_code": self._codes[action.specialty],
                "act": "teleconsultation",
                "resource_id": kiosk_id,
                "assistance": "assisted",
            },
            retry_on=(422,),
        )
        consultation = created.json()
        consultation_id = consultation.get("id") or consultation["consultation_id"]
        accepted = await self._accept(consultation_id, site.departement)
        if accepted is None:
            self.report.failures.append(f"nobody was offered on-demand request {consultation_id}")
            return
        responder_key, view = accepted
        self._spawn(
            self._call(
                site,
                kiosk_id,
                responder_key,
                view["appointment_id"],
                action.media_seconds,
                on_demand=True,
                assisted=True,
            )
        )

    async def _accept(
        self, consultation_id: str, departement: str
    ) -> tuple[str, dict[str, Any]] | None:
        """Responders on duty look at their inbox, the local ones first (dispatch offers to
        the site's département first); the first one offered accepts."""
        on_duty = [r for r in self.plan.responders if r.on_duty]
        ordered = sorted(on_duty, key=lambda r: (r.commune.departement != departement, r.key))
        for _ in range(20):
            for responder in ordered:
                headers = self.tokens.responder(self._ids.responders[responder.key], responder.rpps)
                inbox = await call(
                    self._client,
                    "GET",
                    f"{self.endpoints['booking']}/responders/me/offers",
                    headers=headers,
                )
                if any(offer["id"] == consultation_id for offer in inbox.json()):
                    response = await call(
                        self._client,
                        "POST",
                        f"{self.endpoints['booking']}/consultations/{consultation_id}/accept",
                        headers=headers,
                        expect=(200, 201, 409),
                    )
                    if response.status_code != 409:
                        return responder.key, response.json()
            await asyncio.sleep(0.5)
        return None

    async def _expertise(self, action: Expertise) -> None:
        site_id = self._ids.sites[action.site]
        responder = self.plan.responder(action.responder)
        professional_id = self._ids.responders[responder.key]
        nurse = self.tokens.nurse(site_id)
        expert = self.tokens.responder(professional_id, responder.rpps)
        booking = self.endpoints["booking"]
        created = await call(
            self._client,
            "POST",
            f"{booking}/expertises",
            headers=nurse,
            json={
                "responder_id": professional_id,
                "specialty_code": self._codes[action.specialty],
                "level": action.level,
                "question": "Avis sur lésion cutanée évolutive, photos jointes au dossier.",
                "response_delay_hours": 72,
            },
            retry_on=(422,),
        )
        expertise_id = created.json()["id"]
        url = f"{booking}/expertises/{expertise_id}"
        if action.outcome == "answered":
            await call(self._client, "POST", f"{url}/accept", headers=expert)
            await call(
                self._client,
                "POST",
                f"{url}/answer",
                headers=expert,
                json={"report": "Lésion bénigne, surveillance simple, revoir si évolution."},
            )
            self.report.expertises_answered += 1
        else:
            await call(
                self._client, "POST", f"{url}/reject", headers=expert, json={"reason": "other"}
            )
            self.report.expertises_rejected += 1
        await call(self._client, "POST", f"{url}/close", headers=nurse)
        self.report.expertises += 1

    # --- sessions -------------------------------------------------------------------------

    async def _call(
        self,
        site: SitePlan,
        kiosk_id: str | None,
        responder_key: str,
        appointment_id: str,
        media_seconds: float,
        *,
        on_demand: bool,
        assisted: bool,
    ) -> None:
        site_id = self._ids.sites[site.key]
        responder = self.plan.responder(responder_key)
        responder_headers = self.tokens.responder(
            self._ids.responders[responder_key], responder.rpps
        )
        patient_headers = (
            self.tokens.kiosk(kiosk_id, site_id) if kiosk_id else self.tokens.nurse(site_id)
        )
        signalling = self.endpoints["session-signalling"]
        async with self._calls:
            try:
                # The session is scheduled when session-signalling consumes the booking.
                found = await call(
                    self._client,
                    "GET",
                    f"{signalling}/v1/sessions",
                    headers=patient_headers,
                    params={"appointment_id": appointment_id},
                    retry_on=(404,),
                )
                session_id = found.json()["session_id"]
                patient_pass, responder_pass = await asyncio.gather(
                    *(
                        call(
                            self._client,
                            "POST",
                            f"{signalling}/v1/sessions/{session_id}/join-token",
                            headers=headers,
                        )
                        for headers in (patient_headers, responder_headers)
                    )
                )
                patient_join, responder_join = patient_pass.json(), responder_pass.json()
                result = await run_call(
                    PatientSide(
                        self.endpoints.websocket(
                            "session-signalling", patient_join["websocket_path"]
                        ),
                        patient_join["token"],
                        patient_join["ice_servers"],
                        devices=kiosk_id is not None,
                    ),
                    ResponderBot(
                        self.endpoints.websocket(
                            "session-signalling", responder_join["websocket_path"]
                        ),
                        responder_join["token"],
                        responder_join["ice_servers"],
                    ),
                    media_seconds,
                )
            except (DemoError, SessionFailedError) as error:
                self.report.failures.append(f"session of appointment {appointment_id}: {error}")
                return
        self.report.media_frames += result.media_frames
        self.report.device_readings += result.readings
        if on_demand:
            self.report.on_demand_teleconsultations += 1
        else:
            self.report.scheduled_teleconsultations += 1
        if assisted:
            self.report.assisted_teleconsultations += 1


def _offline_alert_open(view: dict[str, Any]) -> bool:
    return any("offline" in str(alert.get("kind", "")) for alert in view.get("open_alerts", []))


def _site_body(site: SitePlan, codes: dict[str, str]) -> dict[str, Any]:
    return {
        "name": site.name,
        "category": site.category,
        "deployment_model": site.deployment_model,
        "commune_insee": site.commune.insee,
        "location": {"latitude": site.latitude, "longitude": site.longitude},
        "rural": site.commune.rural,
        "under_served": site.under_served,
        "specialties_needed": [codes[slug] for slug in site.specialties_needed],
        "equipment": {
            "kiosks": len(site.kiosks),
            "connected_devices": sorted({d for k in site.kiosks for d in k.devices}),
        },
        "technical_solution": {"vendor": "Maillage demo", "product": "cabine"},
        "receives_external_patients": site.deployment_model.startswith("hotspot"),
    }


def _kiosk_body(site_id: str, label: str, devices: tuple[str, ...], key: str) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "label": label,
        "devices": [
            {"kind": device, "device_id": f"{key}-{device}", "model": "demo"} for device in devices
        ],
    }


def _professional_body(responder: ResponderPlan, codes: dict[str, str]) -> dict[str, Any]:
    return {
        "rpps": responder.rpps,
        "family_name": responder.family_name,
        "given_name": responder.given_name,
        "specialty_codes": [codes[responder.specialty]],
        "acts": ["teleconsultation", "teleexpertise"],
        "departements": [responder.commune.departement],
        "practice_locations": [
            {
                "name": f"Cabinet de {responder.commune.name}",
                "commune_insee": responder.commune.insee,
                "location": {
                    "latitude": responder.commune.latitude,
                    "longitude": responder.commune.longitude,
                },
            }
        ],
        "technical_solution": {"vendor": "Maillage demo", "product": "poste"},
        "usual_expertise_response_hours": 48,
    }
