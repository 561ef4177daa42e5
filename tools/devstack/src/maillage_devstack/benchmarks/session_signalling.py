"""`maillage bench session-signalling`: WebSocket relay and aiortc setup, beside raw baselines.

Starts session-signalling as a uvicorn subprocess on the embedded (or configured) broker and
PostgreSQL, opens S sessions (a kiosk and a responder WebSocket each, 2·S connections),
then measures, each beside a baseline measured in the same run:

- relay latency p50/p99 of chat frames kiosk → server → responder at R messages/s, beside a
  raw `websockets` echo server (client → server → client) with the same connections and rate;
- server CPU time per relayed frame (user + system, over the paced phase), beside the echo
  server's per echoed frame: unlike latency, it hardly depends on the machine's other load;
- memory per idle connection (marginal RSS growth of the server process while the second
  half of the connections joins, / that half), beside the same for the raw echo server;
- aiortc session setup (kiosk agent + responder bot through the service: join, admit,
  offer/answer, ICE+DTLS connected) p50/p95, beside a raw aiortc loopback (two peer
  connections in one process exchanging SDP directly).

Knobs: BENCH_SIGNALLING_SESSIONS (300; the issue's target is 1000), BENCH_SIGNALLING_RATE
(1000 msg/s; target 5000), BENCH_SIGNALLING_SECONDS (5), BENCH_SIGNALLING_SETUPS (15).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiortc import RTCPeerConnection
from websockets.asyncio.client import ClientConnection, connect

from maillage_common.auth import Role
from maillage_common.auth.keys import DevSigningKey, ensure_dev_signing_key, mint_token
from maillage_devstack.bench import Figure, Results, benchmark
from maillage_devstack.infra import free_port, provide_infrastructure
from maillage_session_signalling.peers.agent import KioskAgent, ResponderBot
from maillage_session_signalling.peers.ice import rtc_configuration
from maillage_session_signalling.peers.media import PatternVideoTrack

ISSUER = "bench"
_ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=2**20, compression=None):
        await asyncio.Future()
asyncio.run(main())
"""


@dataclass(frozen=True)
class Knobs:
    sessions: int
    rate: int
    seconds: float
    setups: int

    @classmethod
    def from_environment(cls) -> Knobs:
        return cls(
            sessions=int(os.environ.get("BENCH_SIGNALLING_SESSIONS", "300")),
            rate=int(os.environ.get("BENCH_SIGNALLING_RATE", "1000")),
            seconds=float(os.environ.get("BENCH_SIGNALLING_SECONDS", "5")),
            setups=int(os.environ.get("BENCH_SIGNALLING_SETUPS", "15")),
        )


@benchmark("session-signalling")
def run() -> int:
    """Signalling relay p99 and memory per connection vs raw echo; aiortc setup vs loopback."""
    knobs = Knobs.from_environment()
    with (
        tempfile.TemporaryDirectory(prefix="maillage-bench-signalling-") as root,
        provide_infrastructure(Path(root), durable=False) as infra,
    ):
        key = ensure_dev_signing_key(Path(root) / "keys")
        env = {
            **os.environ,
            "DATABASE_URL": infra.ensure_database("maillage_bench"),
            "SIGNALLING_DATABASE_SCHEMA": f"bench_signalling_{uuid.uuid4().hex[:8]}",
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
            "AUTH_JWKS_URL": key.jwks_url,
            "AUTH_ISSUER": ISSUER,
            "LOG_LEVEL": "WARNING",
            "SIGNALLING_JOIN_TOKEN_SECRET": secrets.token_urlsafe(32),
            # The bench paces its own load; the flood guard would otherwise throttle it.
            "SIGNALLING_FLOOD_RATE_PER_SECOND": "100000",
            "SIGNALLING_FLOOD_BURST": "100000",
        }
        subprocess.run(
            [sys.executable, "-m", "maillage_session_signalling.db.migrate"], env=env, check=True
        )
        with _process(_service_command(port := free_port()), env, "signalling-service") as pid:
            results = asyncio.run(_measure(knobs, f"127.0.0.1:{port}", pid, key))
    print(results.table())
    print(f"written to {results.write()}")
    return 0


def _service_command(port: int) -> list[str]:
    return [
        sys.executable,
        *("-m", "uvicorn", "maillage_session_signalling.app:create_app", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        *("--log-level", "warning", "--ws", "websockets-sansio", "--backlog", "4096"),
        # As deployed (deploy/docker/maillage-entrypoint): no permessage-deflate.
        *("--ws-per-message-deflate", "false"),
    ]


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], name: str) -> Iterator[int]:
    log_path = Path("bench-results") / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _wait_port(port: int) -> None:
    async with asyncio.timeout(60):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client, asyncio.timeout(90):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)


class _Minter:
    def __init__(self, key: DevSigningKey) -> None:
        self._key = key

    def headers(self, role: Role, subject: str, site_id: str | None = None) -> dict[str, str]:
        token = mint_token(
            private_jwk_path=self._key.private_jwk_path,
            role=role,
            subject=subject,
            issuer=ISSUER,
            audience="maillage",
            site_id=site_id,
        )
        return {"Authorization": f"Bearer {token}"}


async def _open_sessions(
    client: httpx.AsyncClient, minter: _Minter, count: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(kiosk pass, responder pass) for `count` fresh sessions."""
    coordinator = minter.headers(Role.COORDINATOR, "bench-coordinator")
    responder = minter.headers(Role.RESPONDER, "bench-pro")
    start = datetime.now(UTC)
    gate = asyncio.Semaphore(10)

    async def one(index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        async with gate:
            site = f"bench-site-{index}"
            created = await client.post(
                "/v1/sessions",
                json={
                    "site_id": site,
                    "responder_id": "bench-pro",
                    "scheduled_start": start.isoformat(),
                    "scheduled_end": (start + timedelta(hours=2)).isoformat(),
                },
                headers=coordinator,
            )
            sid = created.raise_for_status().json()["session_id"]
            kiosk = minter.headers(Role.KIOSK, f"kiosk-{index}", site)
            path = f"/v1/sessions/{sid}/join-token"
            kiosk_pass = (await client.post(path, headers=kiosk)).raise_for_status().json()
            doctor_pass = (await client.post(path, headers=responder)).raise_for_status().json()
            return kiosk_pass, doctor_pass

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _join(ws_base: str, grant: dict[str, Any]) -> ClientConnection:
    ws = await connect(ws_base + grant["websocket_path"], open_timeout=60, max_size=2**20)
    await ws.send(json.dumps({"v": 1, "type": "join", "token": grant["token"]}))
    while json.loads(await ws.recv())["type"] != "joined":
        pass
    return ws


async def _drain(ws: ClientConnection, latencies: list[float], tag: str) -> None:
    with contextlib.suppress(Exception):
        async for raw in ws:
            frame = json.loads(raw)
            text = frame.get("text", "")
            if isinstance(text, str) and text.startswith(tag):
                latencies.append((time.perf_counter() - float(text[len(tag) :])) * 1000)


async def _paced(senders: list[ClientConnection], frame: dict[str, Any], knobs: Knobs) -> int:
    """Send `rate` frames/s round-robin over `senders` for `seconds`; returns frames sent."""
    tick = 0.01
    per_tick = max(1, round(knobs.rate * tick))
    total = int(knobs.rate * knobs.seconds)
    sent = 0
    started = time.perf_counter()
    while sent < total:
        for _ in range(min(per_tick, total - sent)):
            ws = senders[sent % len(senders)]
            body = {**frame, "text": f"{frame['text']}{time.perf_counter()!r}"}
            await ws.send(json.dumps(body))
            sent += 1
        next_tick = started + (sent / per_tick) * tick
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    return sent


async def _settle(latencies: list[float], expected: int) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while len(latencies) < expected:
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _connections(ws_list: list[ClientConnection]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await asyncio.gather(*(ws.close() for ws in ws_list), return_exceptions=True)


async def _relay(knobs: Knobs, host: str, pid: int, minter: _Minter) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=60) as client:
        passes = await _open_sessions(client, minter, knobs.sessions)
    # Each join is a transaction: stay within the service's pool (10 + 10 overflow).
    gate = asyncio.Semaphore(10)

    async def joined(grant: dict[str, Any]) -> ClientConnection:
        async with gate:
            return await _join(f"ws://{host}", grant)

    # Marginal memory: the first half warms the caches (SQL, pools), the second half is
    # measured, so the figure is what one more idle connection costs.
    kiosks = await asyncio.gather(*(joined(k) for k, _ in passes))
    await asyncio.sleep(2)
    rss_before = _rss_kib(pid)
    doctors = await asyncio.gather(*(joined(d) for _, d in passes))
    async with _connections([*kiosks, *doctors]):
        await asyncio.sleep(2)  # let buffers settle before sampling
        per_connection = (_rss_kib(pid) - rss_before) * 1024 / len(doctors)
        latencies: list[float] = []
        readers = [asyncio.create_task(_drain(ws, latencies, "t=")) for ws in doctors]
        cpu_before = _cpu_seconds(pid)
        sent = await _paced(kiosks, {"v": 1, "type": "chat", "text": "t="}, knobs)
        await _settle(latencies, sent)
        cpu = _cpu_seconds(pid) - cpu_before
        for reader in readers:
            reader.cancel()
    return {
        "p50": statistics.median(latencies),
        "p99": _p(latencies, 0.99),
        "bytes_per_connection": per_connection,
        "delivered": len(latencies) / max(sent, 1),
        "cpu_us_per_frame": cpu * 1e6 / max(sent, 1),
    }


async def _echo_baseline(knobs: Knobs, pid: int, port: int) -> dict[str, float]:
    gate = asyncio.Semaphore(50)

    async def opened() -> ClientConnection:
        async with gate:
            return await connect(f"ws://127.0.0.1:{port}", open_timeout=60, max_size=2**20)

    first = await asyncio.gather(*(opened() for _ in range(knobs.sessions)))
    await asyncio.sleep(2)
    rss_before = _rss_kib(pid)
    second = await asyncio.gather(*(opened() for _ in range(knobs.sessions)))
    sockets = [*first, *second]
    async with _connections(sockets):
        await asyncio.sleep(2)
        per_connection = (_rss_kib(pid) - rss_before) * 1024 / len(second)
        latencies: list[float] = []
        senders = sockets[: knobs.sessions]
        readers = [asyncio.create_task(_drain(ws, latencies, "t=")) for ws in senders]
        cpu_before = _cpu_seconds(pid)
        sent = await _paced(senders, {"v": 1, "type": "chat", "text": "t="}, knobs)
        await _settle(latencies, sent)
        cpu = _cpu_seconds(pid) - cpu_before
        for reader in readers:
            reader.cancel()
    return {
        "p50": statistics.median(latencies),
        "p99": _p(latencies, 0.99),
        "bytes_per_connection": per_connection,
        "cpu_us_per_frame": cpu * 1e6 / max(sent, 1),
    }


async def _service_setups(knobs: Knobs, host: str, minter: _Minter) -> list[float]:
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=60) as client:
        passes = await _open_sessions(client, minter, knobs.setups)
    timings: list[float] = []
    for kiosk_pass, doctor_pass in passes:
        started = time.perf_counter()
        async with (
            KioskAgent(f"ws://{host}{kiosk_pass['websocket_path']}", kiosk_pass["token"]) as kiosk,
            ResponderBot(
                f"ws://{host}{doctor_pass['websocket_path']}", doctor_pass["token"]
            ) as bot,
        ):
            runners = [asyncio.create_task(kiosk.run()), asyncio.create_task(bot.run())]
            async with asyncio.timeout(60):
                await kiosk.connected.wait()
                await bot.connected.wait()
            timings.append((time.perf_counter() - started) * 1000)
            for runner in runners:
                runner.cancel()
    return timings


async def _loopback_setups(count: int) -> list[float]:
    timings: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        offerer = RTCPeerConnection(configuration=rtc_configuration([]))
        answerer = RTCPeerConnection(configuration=rtc_configuration([]))
        connected = asyncio.Event()

        @answerer.on("connectionstatechange")
        async def on_state(
            pc: RTCPeerConnection = answerer, done: asyncio.Event = connected
        ) -> None:
            if pc.connectionState == "connected":
                done.set()

        offerer.addTrack(PatternVideoTrack())
        offerer.createDataChannel("devices")
        answerer.addTrack(PatternVideoTrack())
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        async with asyncio.timeout(60):
            await connected.wait()
            while offerer.connectionState != "connected":
                await asyncio.sleep(0.005)
        timings.append((time.perf_counter() - started) * 1000)
        await offerer.close()
        await answerer.close()
    return timings


async def _measure(knobs: Knobs, host: str, pid: int, key: DevSigningKey) -> Results:
    await _wait_ready(f"http://{host}")
    minter = _Minter(key)
    relay = await _relay(knobs, host, pid, minter)
    echo_port = free_port()
    with _process(
        [sys.executable, "-c", _ECHO_SERVER, str(echo_port)], dict(os.environ), "echo"
    ) as echo_pid:
        await _wait_port(echo_port)
        echo = await _echo_baseline(knobs, echo_pid, echo_port)
    service_setup = await _service_setups(knobs, host, minter)
    loopback_setup = await _loopback_setups(knobs.setups)

    results = Results(
        "session-signalling",
        parameters={
            "sessions": knobs.sessions,
            "connections": 2 * knobs.sessions,
            "rate_per_second": knobs.rate,
            "seconds": knobs.seconds,
            "setups": knobs.setups,
            "relay_delivered_ratio": relay["delivered"],
        },
    )
    results.add(Figure("relay latency p50", relay["p50"], "ms", "raw ws echo", echo["p50"]))
    results.add(
        Figure("relay latency p99", relay["p99"], "ms", "raw ws echo", echo["p99"], "< 10 ms")
    )
    # CPU time per frame does not depend on what else the machine runs (latency does).
    results.add(
        Figure(
            "server CPU per relayed frame",
            relay["cpu_us_per_frame"],
            "µs",
            "raw ws echo",
            echo["cpu_us_per_frame"],
        )
    )
    results.add(
        Figure(
            "memory per idle connection",
            relay["bytes_per_connection"] / 1024,
            "KiB",
            "raw ws echo",
            echo["bytes_per_connection"] / 1024,
            "< 40 KB",
        )
    )
    results.add(
        Figure(
            "aiortc session setup p50",
            statistics.median(service_setup),
            "ms",
            "raw aiortc loopback",
            statistics.median(loopback_setup),
        )
    )
    results.add(
        Figure(
            "aiortc session setup p95",
            _p(service_setup, 0.95),
            "ms",
            "raw aiortc loopback",
            _p(loopback_setup, 0.95),
            "< 300 ms",
        )
    )
    return results
