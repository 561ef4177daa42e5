"""Tele-expertise: the overdue event (once per request) and attachments in the blob store."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from maillage.booking.v1.events_pb2 import ExpertiseOverdue
from maillage_booking.db.blob_store import BlobStoreError, FilesystemBlobStore
from maillage_booking.use_cases.expertises import add_attachment, flag_overdue

if TYPE_CHECKING:
    from conftest import World

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n% a report\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def _ask(world: World) -> dict[str, Any]:
    asked = await world.client.post(
        "/expertises",
        json={"responder_id": world.responder_id, "question": "Avis ?", "response_delay_hours": 1},
        headers=world.nurse(),
    )
    assert asked.status_code == 201, asked.text
    case: dict[str, Any] = asked.json()
    return case


async def _execute(world: World, sql: str, **params: Any) -> None:
    async with world.app.state.runtime.engine.begin() as connection:
        await connection.execute(text(sql), params)


async def test_an_overdue_request_is_announced_once(fast_world: World) -> None:
    world = fast_world
    case = await _ask(world)
    # Set the clock of this request back instead of waiting an hour.
    await _execute(
        world,
        "UPDATE expertises SET due_at = now() - interval '1 minute' WHERE id = :i",
        i=case["id"],
    )

    async def flagged() -> bool:
        return bool(
            await world.scalar(
                "SELECT overdue_at IS NOT NULL FROM expertises WHERE id = :i", i=case["id"]
            )
        )

    await world.eventually(flagged)
    # Another sweep (another replica) finds nothing left to announce for it.
    await flag_overdue(world.app.state.runtime.unit_of_work())
    view = await world.client.get(f"/expertises/{case['id']}", headers=world.nurse())
    assert (view.json()["overdue"], view.json()["status"]) == (True, "requested")
    assert view.json()["overdue_at"] is not None

    closed = await world.client.post(f"/expertises/{case['id']}/close", headers=world.nurse())
    assert closed.status_code == 200, closed.text
    # Per-key order: a second ExpertiseOverdue would arrive before ExpertiseClosed.
    published = await world.consume("booking.expertises", case["id"], 3)
    assert [t.rsplit(".", 1)[1] for t, _ in published] == [
        "ExpertiseRequested",
        "ExpertiseOverdue",
        "ExpertiseClosed",
    ]
    overdue = ExpertiseOverdue.FromString(published[1][1])
    assert (overdue.site_id, overdue.departement, overdue.responder_id) == (
        world.site_id,
        "67",
        world.responder_id,
    )
    assert overdue.accepted is False
    assert overdue.requested_response_delay.seconds == 3600


async def test_attachment_bytes_live_in_the_blob_store_with_their_checksum(world: World) -> None:
    nurse = world.nurse()
    case = await _ask(world)
    url = f"/expertises/{case['id']}/attachments"
    uploaded = await world.client.put(
        f"{url}/photo.png", content=PNG, headers={**nurse, "Content-Type": "image/png"}
    )
    assert uploaded.status_code == 201, uploaded.text
    digest = hashlib.sha256(PNG).hexdigest()
    assert uploaded.json()["sha256"] == digest
    stored = await world.scalar(
        "SELECT data IS NULL AND sha256 = :d FROM attachments WHERE id = :i",
        i=uploaded.json()["id"],
        d=digest,
    )
    assert stored is True
    root = Path(world.app.state.runtime.settings.attachment_directory)
    assert (root / digest[:2] / digest[2:4] / digest).read_bytes() == PNG
    fetched = await world.client.get(f"{url}/{uploaded.json()['id']}", headers=nurse)
    assert (fetched.content, fetched.headers["content-type"]) == (PNG, "image/png")


async def test_an_oversized_chunked_upload_is_refused(world: World) -> None:
    case = await _ask(world)

    async def chunks() -> AsyncIterator[bytes]:
        yield PDF
        for _ in range(6):
            yield b"x" * 1_000_000

    answer = await world.client.put(
        f"/expertises/{case['id']}/attachments/big.pdf",
        content=chunks(),
        headers={**world.nurse(), "Content-Type": "application/pdf"},
    )
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["field"] == "body"


class _BrokenStore:
    async def put(self, data: bytes) -> str:
        raise BlobStoreError("disk full")

    async def get(self, digest: str) -> bytes:
        raise BlobStoreError("disk full")


async def test_a_failed_blob_write_leaves_no_record(world: World) -> None:
    case = await _ask(world)
    with pytest.raises(BlobStoreError):
        await add_attachment(
            world.app.state.runtime.unit_of_work(),
            _BrokenStore(),
            uuid.UUID(case["id"]),
            None,
            filename="report.pdf",
            content_type="application/pdf",
            data=PDF,
            max_bytes=1_000_000,
        )
    app_store = world.app.state.blob_store
    world.app.state.blob_store = _BrokenStore()
    try:
        answer = await world.client.put(
            f"/expertises/{case['id']}/attachments/report.pdf",
            content=PDF,
            headers={**world.nurse(), "Content-Type": "application/pdf"},
        )
    finally:
        world.app.state.blob_store = app_store
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    rows = await world.scalar(
        "SELECT count(*) FROM attachments WHERE expertise_id = :i", i=case["id"]
    )
    assert rows == 0


async def test_the_filesystem_store_is_content_addressed_and_checked(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    digest = await store.put(PDF)
    assert digest == hashlib.sha256(PDF).hexdigest()
    assert await store.put(PDF) == digest  # equal contents, one blob
    assert await store.get(digest) == PDF
    leftovers = await asyncio.to_thread(lambda: list(tmp_path.rglob(".incoming-*")))
    assert not leftovers  # no temporary file left behind
    await asyncio.to_thread((tmp_path / digest[:2] / digest[2:4] / digest).write_bytes, b"bad")
    with pytest.raises(BlobStoreError):
        await store.get(digest)
    with pytest.raises(BlobStoreError):
        await store.get("0" * 64)
    with pytest.raises(BlobStoreError):
        await store.get("../../etc/passwd")
