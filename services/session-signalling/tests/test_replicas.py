"""Two replicas (two processes): participants on different replicas still reach each other."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from signalling_wsclient import Client

from maillage_common.auth.keys import DevSigningKey
from maillage_devstack.infra import free_port
from maillage_devstack.pytest_plugin import TEST_ISSUER

from signalling_testing import LiveServiceFactory

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def second_replica(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[str]:
    """The service in its own uvicorn process on the same schema; yields its ws:// base.

    Alive is enough: WebSockets need the database, not the consumers (still rebalancing).
    """
    port = free_port()
    log = (tmp_path / "replica-b.log").open("wb")
    command = [
        sys.executable,
        *("-m", "uvicorn", "maillage_session_signalling.app:create_app", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--ws", "websockets-sansio"),
        *("--ws-per-message-deflate", "false"),
        *("--log-level", "warning"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, env={**os.environ, **env}, stdout=log, stderr=log
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async with asyncio.timeout(90):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    assert process.returncode is None, (tmp_path / "replica-b.log").read_text()
                    await asyncio.sleep(0.2)
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            await process.wait()
        log.close()


async def test_participants_on_two_replicas_reach_each_other(
    live_service: LiveServiceFactory,
    tmp_path: Path,
    database_url: str,
    database_schema: str,
    kafka_bootstrap_servers: str,
    dev_signing_key: DevSigningKey,
) -> None:
    secret = secrets.token_urlsafe(32)
    site, doctor = f"site-{uuid.uuid4().hex[:6]}", f"pro-{uuid.uuid4().hex[:6]}"
    env = {
        "DATABASE_URL": database_url,
        "SIGNALLING_DATABASE_SCHEMA": database_schema,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "AUTH_JWKS_URL": dev_signing_key.jwks_url,
        "AUTH_ISSUER": TEST_ISSUER,
        "SIGNALLING_JOIN_TOKEN_SECRET": secret,
        "LOG_JSON": "false",
        # Only WebSockets are under test here; a second member joining then leaving the
        # shared consumer group would stall the next tests' rebalance.
        "SIGNALLING_CONSUME_EVENTS": "false",
    }
    async with (
        live_service(join_token_secret=secret) as svc,
        second_replica(tmp_path, env) as replica_b,
    ):
        sid = (await svc.create_session(site_id=site, responder=doctor))["session_id"]
        kiosk_pass = await svc.join_token(sid, "kiosk", subject="kiosk-1", site_id=site)
        doctor_pass = await svc.join_token(sid, "responder", subject=doctor)
        kiosk_id, doctor_id = kiosk_pass["participant_id"], doctor_pass["participant_id"]

        kiosk, _ = await Client.join(svc.ws_url(kiosk_pass), kiosk_pass["token"])
        doctor_url = replica_b + doctor_pass["websocket_path"]
        doctor_ws, joined = await Client.join(doctor_url, doctor_pass["token"])
        assert joined["state"] == "waiting"
        assert (await kiosk.expect("peer_joined"))["participant_id"] == doctor_id

        await doctor_ws.send({"type": "admit"})
        assert (await kiosk.expect("state"))["state"] == "admitted"
        await doctor_ws.send({"type": "offer", "to": kiosk_id, "sdp": "v=0 across"})
        offer = await kiosk.expect("offer")
        assert (offer["sdp"], offer["from"]) == ("v=0 across", doctor_id)
        await kiosk.send({"type": "answer", "to": doctor_id, "sdp": "v=0 back"})
        assert (await doctor_ws.expect("answer"))["from"] == kiosk_id
        await kiosk.send({"type": "chat", "text": "bonjour"})
        assert (await doctor_ws.expect("chat"))["text"] == "bonjour"

        # Over PostgreSQL's 8000-byte NOTIFY limit: stored, referenced, fetched, in order.
        photo = base64.b64encode(secrets.token_bytes(24_000)).decode()
        attachment = {"name": "plaie.jpg", "media_type": "image/jpeg", "data": photo}
        await kiosk.send({"type": "chat", "text": "la photo", "attachment": attachment})
        await kiosk.send({"type": "chat", "text": "après la photo"})
        big = await doctor_ws.expect("chat")
        assert (big["text"], big["from"]) == ("la photo", kiosk_id)
        assert big["attachment"]["data"] == photo
        assert (await doctor_ws.expect("chat"))["text"] == "après la photo"
        await doctor_ws.send({"type": "chat", "text": "reçue", "attachment": attachment})
        assert (await kiosk.expect("chat"))["attachment"]["data"] == photo

        await doctor_ws.send({"type": "bye"})
        await kiosk.expect("bye")
        assert await kiosk.closed_with() == 1000
        read = await svc.client.get(f"/v1/sessions/{sid}", headers=svc.auth("coordinator"))
        assert read.json()["state"] == "ended"
