"""Every Grafana dashboard query returns data from a real Prometheus scraping the platform.

End to end, the way a container runs it: each service is migrated and served through the
image's entrypoint (deploy/docker/maillage-entrypoint) with its secrets read from files made
by the compose dev-secrets job (deploy/compose/dev_secrets.py), on the session's real broker
and PostgreSQL. Traffic then goes through the public APIs (a site, a kiosk, heartbeats,
measurements, a session…) plus one poison message for the dead-letter panels; Debian's
Prometheus scrapes every service, and each panel's query must return at least one finite
sample.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from maillage_common.auth import Role
from maillage_common.auth.keys import mint_token
from maillage_devstack.service_testing import eventually

from directory_testing import with_luhn

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ENTRYPOINT = ROOT / "deploy" / "docker" / "maillage-entrypoint"
# Service → the env prefix of its own settings.
SERVICES = {
    "directory": "DIRECTORY_",
    "booking": "BOOKING_",
    "session-signalling": "SIGNALLING_",
    "telemetry": "TELEMETRY_",
    "statistics": "STATISTICS_",
}
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$service": ".*"}
WAIT_SECONDS = 90.0
ALL_DAY_SCHEDULE = {
    "time_zone": "Europe/Paris",
    "weekly": [{"weekday": day, "start": "00:00", "end": "23:30"} for day in range(7)],
    "slot_minutes": {"teleconsultation": 30, "teleexpertise": 30},
    "window_days": 30,
}


@dataclass(frozen=True, slots=True)
class Platform:
    urls: dict[str, str]
    secrets: Path

    def token(self, role: Role, subject: str = "e2e", site_id: str | None = None) -> str:
        return mint_token(
            private_jwk_path=self.secrets / "dev-keys" / "signing-key.jwk.json",
            role=role,
            subject=subject,
            issuer="maillage-dev",
            audience="maillage",
            site_id=site_id,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-30:])


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until `url` answers 200; fail with the process's log if it exits or never does."""
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        for _ in range(int(WAIT_SECONDS * 4)):
            if process.poll() is not None:
                pytest.fail(f"{url}: the process exited ({process.returncode}):\n{_tail(log)}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    pytest.fail(f"{url} never answered 200:\n{_tail(log)}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def platform(
    database_url: str, kafka_bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    work = tmp_path_factory.mktemp("platform")
    secrets = work / "secrets"
    subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "compose" / "dev_secrets.py"), str(secrets)],
        check=True,
        capture_output=True,
    )
    run = uuid.uuid4().hex[:8]
    shared = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "AUTH_JWKS_URL": (secrets / "dev-keys" / "jwks.json").as_uri(),
        "AUTH_ISSUER": "maillage-dev",
        "AUTH_AUDIENCE": "maillage",
        "LOG_JSON": "false",
        # The compose wiring: secrets as files, read by the entrypoint.
        "BOOKING_PATIENT_KEY_FILE": str(secrets / "booking-patient-key"),
        "SIGNALLING_JOIN_TOKEN_SECRET_FILE": str(secrets / "signalling-join-token-secret"),
        "SIGNALLING_TURN_SECRET_FILE": str(secrets / "signalling-turn-secret"),
        # Short loops, so the gauges the dashboards read are fresh within the test.
        "TELEMETRY_OFFLINE_CHECK_INTERVAL_SECONDS": "1",
        "STATISTICS_METRICS_CACHE_SECONDS": "1",
    }
    environments: dict[str, dict[str, str]] = {}
    for service, prefix in SERVICES.items():
        environments[service] = {
            **shared,
            # Its own schemas and consumer groups on the session's shared infrastructure.
            f"{prefix}DATABASE_SCHEMA": f"e2e_{run}_{service.replace('-', '_')}",
            f"{prefix}CONSUMER_GROUP_PREFIX": f"e2e-{run}.",
            f"{prefix}OUTBOX_POLL_INTERVAL_SECONDS": "0.2",
            "PORT": str(_free_port()),
        }
    logs = {service: work / f"{service}.log" for service in SERVICES}

    def launch(command: str, service: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["sh", str(ENTRYPOINT), command, service],
            env=environments[service],
            stdin=subprocess.DEVNULL,
            stdout=logs[service].open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    # All migrations at once; each service starts as soon as its own migration succeeded
    # (compose: depends_on service_completed_successfully).
    migrations = {service: launch("migrate", service) for service in SERVICES}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        while len(servers) < len(SERVICES):
            for service, migration in migrations.items():
                if service in servers or migration.poll() is None:
                    continue
                assert migration.returncode == 0, f"{service} migration:\n{_tail(logs[service])}"
                servers[service] = launch("serve", service)
            time.sleep(0.1)
        urls = {s: f"http://127.0.0.1:{environments[s]['PORT']}" for s in SERVICES}
        for service, server in servers.items():
            _wait_http(f"{urls[service]}/readyz", server, logs[service])
        yield Platform(urls=urls, secrets=secrets)
    finally:
        _stop([*migrations.values(), *servers.values()])


@pytest.fixture(scope="module")
def prometheus(
    platform: Platform, prometheus_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus scraping every service each second, as deploy/prometheus does."""
    work = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": service, "static_configs": [{"targets": [url.removeprefix("http://")]}]}
            for service, url in platform.urls.items()
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{_free_port()}"
    log = work / "prometheus.log"
    process = subprocess.Popen(
        [
            str(prometheus_binary),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://{address}/-/ready", process, log)
        yield f"http://{address}"
    finally:
        _stop([process])


class Traffic:
    """One day in a region, in miniature: every metric a panel reads gets samples.

    `start` builds the scene once (a site, a kiosk, a professional, a session, alerts, one
    poison message); `tick` repeats the everyday calls, so rates and latency quantiles keep
    two samples in their window while the panels are evaluated (a labelled series first
    appears with its first increment, which a rate alone never sees).
    """

    def __init__(self, platform: Platform, client: httpx.AsyncClient, bootstrap: str) -> None:
        self.urls = platform.urls
        self.platform = platform
        self.client = client
        self.bootstrap = bootstrap
        self.coordinator = self._bearer(platform.token(Role.COORDINATOR))
        self.site_id = self.kiosk_id = self.professional_id = self.patient_ref = ""
        self.kiosk: dict[str, str] = {}
        self.device_id = f"oxi-{uuid.uuid4().hex[:12]}"
        self.nurse: dict[str, str] = {}
        paris = datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=1)
        self.next_slot = paris.replace(hour=8, minute=0, second=0, microsecond=0)

    @staticmethod
    def _bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def _send(
        self, method: str, url: str, body: dict[str, Any], headers: dict[str, str], status: int
    ) -> Any:
        answer = await self.client.request(method, url, json=body, headers=headers)
        assert answer.status_code == status, f"{method} {url}: {answer.status_code} {answer.text}"
        return answer.json()

    async def start(self) -> None:
        urls, coordinator = self.urls, self.coordinator
        site = await self._send(
            "POST",
            f"{urls['directory']}/sites",
            {
                "name": f"EHPAD e2e {uuid.uuid4().hex[:6]}",
                "category": "ehpad",
                "deployment_model": "hotspot_dedie",
                "commune_insee": "57463",
                "location": {"latitude": 49.1193, "longitude": 6.1757},
            },
            coordinator,
            201,
        )
        self.site_id = site["id"]
        enrolled = await self._send(
            "POST",
            f"{urls['directory']}/kiosks",
            {"site_id": self.site_id, "label": "Cabine 1", "devices": [{"kind": "oximeter"}]},
            coordinator,
            201,
        )
        self.kiosk_id = enrolled["kiosk"]["id"]
        professional = await self._send(
            "POST",
            f"{urls['directory']}/professionals",
            {
                "rpps": with_luhn(f"1{uuid.uuid4().int % 10**9:09d}"),
                "family_name": "Muller",
                "given_name": "Anne",
                "specialty_codes": ["dermatologie"],
                "acts": ["teleconsultation"],
                "departements": ["57"],
            },
            coordinator,
            201,
        )
        self.professional_id = professional["id"]
        verified = await self._send(
            "POST",
            f"{urls['directory']}/kiosks/credentials/verify",
            {"key_id": enrolled["key_id"], "secret": enrolled["secret"]},
            self._bearer(self.platform.token(Role.SERVICE)),
            200,
        )
        assert verified["valid"] is True

        async def placed() -> bool | None:
            answer = await self.client.get(
                f"{urls['telemetry']}/kiosks/{self.kiosk_id}", headers=coordinator
            )
            return True if answer.status_code == 200 else None

        await eventually(
            placed, "the kiosk's directory snapshot reached telemetry", seconds=WAIT_SECONDS
        )
        self.kiosk = self._bearer(
            self.platform.token(Role.KIOSK, subject=self.kiosk_id, site_id=self.site_id)
        )
        await self._send(
            "POST",
            f"{urls['telemetry']}/kiosks/{self.kiosk_id}/devices",
            {"device_id": self.device_id, "kind": "oximeter"},
            self.kiosk,
            201,
        )
        self.patient_ref = f"pt_{uuid.uuid4().hex}"
        self.nurse = self._bearer(self.platform.token(Role.NURSE, site_id=self.site_id))
        await self._send(
            "PUT",
            f"{urls['telemetry']}/consents/{self.patient_ref}",
            {"granted": True},
            self.nurse,
            200,
        )

        async def scheduled() -> bool | None:
            answer = await self.client.put(
                f"{urls['booking']}/responders/{self.professional_id}/schedule",
                json=ALL_DAY_SCHEDULE,
                headers=coordinator,
            )
            return True if answer.status_code == 200 else None

        await eventually(
            scheduled, "the professional reached booking's read model", seconds=WAIT_SECONDS
        )
        await self._heartbeat("fault")  # raises a peripheral alert; the ticks clear it
        await self._measurements(85)  # SpO2 85 % raises a threshold alert
        await self._poison()
        await self.tick()

    async def tick(self) -> None:
        urls = self.urls
        for url in urls.values():  # client errors, for the 4xx panel
            assert (await self.client.get(f"{url}/no-such-route")).status_code == 404
        await self._heartbeat("ok")
        await self._measurements(97)
        await self._book()
        now = datetime.now(UTC)
        await self._send(
            "POST",
            f"{urls['session-signalling']}/v1/sessions",
            {
                "site_id": self.site_id,
                "responder_id": self.professional_id,
                "scheduled_start": (now + timedelta(hours=1)).isoformat(),
                "scheduled_end": (now + timedelta(hours=1, minutes=20)).isoformat(),
                "departement": "57",
            },
            self.coordinator,
            201,
        )
        await self._send(
            "POST",
            f"{urls['telemetry']}/call-quality",
            {
                "session_id": str(uuid.uuid4()),
                "measured_at": now.isoformat(),
                "rtt_ms": 80,
                "jitter_ms": 12,
                "loss_ratio": 0.01,
                "bitrate_kbps": 900,
                "level": "good",
            },
            self.kiosk,
            202,
        )

    async def _book(self) -> None:
        """Book the next free slot (booking → session-signalling → statistics), then try the
        same slot again: the database refuses the double booking (409, a conflict)."""
        start = self.next_slot
        self.next_slot += timedelta(minutes=30)
        body = {"responder_id": self.professional_id, "start": start.isoformat()}
        url = f"{self.urls['booking']}/appointments"

        async def booked() -> bool | None:
            answer = await self.client.post(url, json=body, headers=self.nurse)
            return True if answer.status_code == 201 else None

        await eventually(
            booked,
            f"booking {start} (the site reached booking's read model)",
            seconds=WAIT_SECONDS,
        )
        again = await self.client.post(url, json=body, headers=self.nurse)
        assert again.status_code == 409, again.text

    async def _heartbeat(self, oximeter: str) -> None:
        heartbeat = {
            "status": "ready",
            "software_version": "2.4.1",
            "network_quality": "good",
            "rtt_ms": 42,
            "peripherals": [{"kind": "oximeter", "device_id": self.device_id, "status": oximeter}],
            "sent_at": datetime.now(UTC).isoformat(),
        }
        await self._send("POST", f"{self.urls['telemetry']}/heartbeats", heartbeat, self.kiosk, 202)

    async def _measurements(self, value: float) -> None:
        item = {
            "measurement_id": str(uuid.uuid4()),
            "device_id": self.device_id,
            "device_kind": "oximeter",
            "patient_ref": self.patient_ref,
            "loinc_code": "59408-5",
            "ucum_unit": "%",
            "value": value,
            "measured_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        }
        answer = await self._send(
            "POST",
            f"{self.urls['telemetry']}/measurements/batch",
            {"items": [item]},
            self.kiosk,
            200,
        )
        assert [i["outcome"] for i in answer["items"]] == ["accepted"], answer

    async def _poison(self) -> None:
        """A record no consumer can decode: each consumer of directory.sites dead-letters it."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("directory.sites", b"not a protobuf", key=b"poison")
        finally:
            await producer.stop()


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL as Grafana sends it) for every target of every panel."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expression = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expression = expression.replace(variable, value)
                unknown = re.findall(r"\$\w+", expression)
                assert not unknown, f"{path.name} / {panel['title']}: unknown {unknown}"
                queries.append((dashboard["title"], panel["title"], expression))
    return queries


def test_every_dashboard_defines_panels_with_queries() -> None:
    queries = _panel_queries()
    titles = {dashboard for dashboard, _, _ in queries}
    assert len(titles) == 4
    assert len(queries) >= 30


@pytest.mark.integration
async def test_every_dashboard_panel_returns_data(
    platform: Platform, prometheus: str, kafka_bootstrap_servers: str
) -> None:
    pending = _panel_queries()
    empty: dict[tuple[str, str, str], str] = {}
    async with httpx.AsyncClient(timeout=15.0, trust_env=False) as client:
        traffic = Traffic(platform, client, kafka_bootstrap_servers)
        await traffic.start()
        for _ in range(int(WAIT_SECONDS)):
            await asyncio.sleep(1.0)
            await traffic.tick()
            still: list[tuple[str, str, str]] = []
            for query in pending:
                answer = await client.get(f"{prometheus}/api/v1/query", params={"query": query[2]})
                body = answer.json()
                assert body["status"] == "success", f"{query[0]} / {query[1]}: {body}"
                values = [float(series["value"][1]) for series in body["data"]["result"]]
                if not any(math.isfinite(value) for value in values):
                    still.append(query)
                    empty[query] = f"{len(values)} series, none finite" if values else "no data"
            pending = still
            if not pending:
                break
    assert pending == [], "panels without data:\n" + "\n".join(
        f"  {dashboard} / {panel}: {empty[(dashboard, panel, q)]}\n    {q}"
        for dashboard, panel, q in pending
    )
