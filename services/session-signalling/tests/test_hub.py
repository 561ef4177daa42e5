"""Rooms on one replica: replacement, rejoin window, cross-replica presence (no I/O)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from maillage_session_signalling.domain.lifecycle import Role
from maillage_session_signalling.signalling.hub import Connection, Frame, Hub
from maillage_session_signalling.signalling.tokens import JoinGrant


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    async def send_text(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class FakeFabric:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Frame]] = []

    def send(self, room_id: str, to: str, frame: Frame, exclude: str | None) -> bool:
        self.sent.append((room_id, to, frame))
        return True


def grant(pid: str, role: Role = Role.PATIENT, room: str = "room-1") -> JoinGrant:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return JoinGrant(uuid.uuid4(), room, pid, role, "", expires)


async def _flush() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_second_connection_replaces_the_first() -> None:
    hub = Hub(rejoin_window=60, on_gone=lambda g: asyncio.sleep(0))
    first, second = Connection(grant("a"), FakeTransport()), Connection(grant("a"), FakeTransport())
    assert hub.attach(first).replaced is None
    attached = hub.attach(second)
    assert attached.replaced is first
    assert not hub.detach(first, graceful=False)  # the stale one changes nothing
    assert hub.is_current(second)
    await second.close(1000, "done")
    await first.close(1000, "done")


async def test_a_dropped_participant_is_gone_only_after_the_rejoin_window() -> None:
    gone: list[str] = []

    async def on_gone(g: JoinGrant) -> None:
        gone.append(g.participant_id)

    hub = Hub(rejoin_window=0.05, on_gone=on_gone)
    kept, lost = (
        Connection(grant("kept"), FakeTransport()),
        Connection(grant("lost"), FakeTransport()),
    )
    hub.attach(kept)
    hub.attach(lost)
    hub.detach(kept, graceful=False)
    hub.detach(lost, graceful=False)
    assert hub.attach(Connection(grant("kept"), FakeTransport())).rejoined
    async with asyncio.timeout(10):
        while not gone:
            await asyncio.sleep(0.01)
    assert gone == ["lost"]
    await hub.close_all()


async def test_frames_stay_in_their_room_and_unknown_targets_go_to_the_fabric() -> None:
    fabric = FakeFabric()
    hub = Hub(rejoin_window=60, on_gone=lambda g: asyncio.sleep(0), fabric=fabric)
    here, there = FakeTransport(), FakeTransport()
    hub.attach(Connection(grant("a", room="r1"), here))
    hub.attach(Connection(grant("b", room="r2"), there))
    hub.broadcast("r1", {"type": "peer_joined", "participant_id": "a", "role": "patient"})
    assert hub.deliver("r1", "elsewhere", {"type": "offer"})
    await _flush()
    assert here.sent == [{"type": "peer_joined", "participant_id": "a", "role": "patient"}]
    assert there.sent == []
    assert [(room, to) for room, to, _ in fabric.sent] == [("r1", "*"), ("r1", "elsewhere")]
    await hub.close_all()


async def test_chat_crosses_replicas_only_when_a_member_is_elsewhere() -> None:
    fabric = FakeFabric()
    hub = Hub(rejoin_window=60, on_gone=lambda g: asyncio.sleep(0), fabric=fabric)
    hub.attach(Connection(grant("kiosk", room="r"), FakeTransport()))
    hub.broadcast("r", {"type": "chat", "text": "alone"})
    assert fabric.sent == []
    # A member joining elsewhere is told who is here (it may have started after us) ...
    hub.receive(
        "r", "*", None, {"type": "peer_joined", "participant_id": "doc", "role": "responder"}
    )
    assert fabric.sent == [("r", "*", {"type": "_presence", "members": {"kiosk": "patient"}})]
    # ... and from then on the room's chat crosses.
    hub.broadcast("r", {"type": "chat", "text": "together"})
    assert fabric.sent[-1] == ("r", "*", {"type": "chat", "text": "together"})
    await hub.close_all()


async def test_presence_from_another_replica_is_learnt_not_delivered() -> None:
    hub = Hub(rejoin_window=60, on_gone=lambda g: asyncio.sleep(0))
    local = FakeTransport()
    hub.attach(Connection(grant("doc", Role.RESPONDER, room="r"), local))
    hub.receive("r", "*", None, {"type": "_presence", "members": {"kiosk": "patient"}})
    assert hub.everyone("r") == {"doc": "responder", "kiosk": "patient"}
    await _flush()
    assert local.sent == []
    await hub.close_all()


async def test_a_removed_participant_has_no_rejoin_slot() -> None:
    hub = Hub(rejoin_window=60, on_gone=lambda g: asyncio.sleep(0))
    invitee = Connection(grant("specialist", Role.SPECIALIST), FakeTransport())
    hub.attach(invitee)
    assert hub.remove("room-1", "specialist") is invitee
    assert not hub.detach(invitee, graceful=False)  # its closing records nothing more
    assert hub.everyone("room-1") == {}
    assert hub.holding("room-1") == 0  # no rejoin slot, so nothing will expire either
    await invitee.close(4003, "removed")
    await hub.close_all()


async def test_participants_on_other_replicas_are_learnt_from_relayed_frames() -> None:
    hub = Hub(rejoin_window=60, on_gone=lambda g: asyncio.sleep(0))
    local = FakeTransport()
    hub.attach(Connection(grant("kiosk", room="r"), local))
    hub.receive(
        "r", "*", None, {"type": "peer_joined", "participant_id": "doc", "role": "responder"}
    )
    assert hub.everyone("r") == {"kiosk": "patient", "doc": "responder"}
    assert hub.holding("r") == 2
    hub.receive("r", "*", None, {"type": "peer_left", "participant_id": "doc", "reason": "hangup"})
    assert hub.everyone("r") == {"kiosk": "patient"}
    await _flush()
    assert [f["type"] for f in local.sent] == ["peer_joined", "peer_left"]
    await hub.close_all()
