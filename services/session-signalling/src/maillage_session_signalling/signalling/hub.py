"""Rooms of live connections on this replica, and relaying between them.

A room holds at most one connection per participant: a second connection with the same
participant replaces the first. A participant whose connection drops keeps their place for
the rejoin window; past it they are gone (`on_gone`). A frame addressed to a participant
connected elsewhere goes through the `Fabric` (cross-replica relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from maillage_session_signalling.signalling.tokens import JoinGrant

_log = structlog.get_logger(__name__)

# Close codes beyond RFC 6455's: 4000 = replaced by a newer connection, 4001 = session over.
CLOSE_REPLACED = 4000
CLOSE_SESSION_OVER = 4001
CLOSE_REMOVED = 4003
_OUTBOX_FRAMES = 256
# Broadcasts that always cross replicas (presence and room state); `_PRESENCE` is internal.
_PRESENCE = "_presence"
_ROOM_EVENTS = frozenset({"peer_joined", "peer_left", "state", "bye", _PRESENCE})
Frame = dict[str, Any] | str
"""A frame to deliver: a dict, or JSON text already serialised (relayed client frames, never
room events)."""


class Transport(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Fabric(Protocol):
    """Carries frames to participants connected to other replicas (`to="*"`: the room)."""

    def send(self, room_id: str, to: str, frame: Frame, exclude: str | None) -> bool: ...


class LocalFabric:
    """A single replica: nobody is elsewhere."""

    def send(self, room_id: str, to: str, frame: Frame, exclude: str | None) -> bool:
        return False


class Connection:
    """One participant's WebSocket; outbound frames go through a bounded buffer so a slow
    receiver never blocks its sender (it is closed instead).

    The writer task exists only while frames are pending: an idle connection holds no task
    and no queue machinery (memory per idle connection is a service target).
    """

    __slots__ = ("_outbox", "_transport", "_writer", "closed", "grant")

    def __init__(self, grant: JoinGrant, transport: Transport) -> None:
        self.grant = grant
        self._transport = transport
        self._outbox: deque[str] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def participant_id(self) -> str:
        return self.grant.participant_id

    def send(self, frame: Frame) -> None:
        if self.closed:
            return
        if len(self._outbox) >= _OUTBOX_FRAMES:
            _log.warning("slow_receiver_closed", participant_id=self.participant_id)
            asyncio.get_running_loop().create_task(self.close(1008, "receiver too slow"))
            return
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        self._outbox.append(text)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self._transport.close(code, reason)
        await self.stop_writer()

    async def stop_writer(self) -> None:
        self.closed = True
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self) -> None:
        try:
            while self._outbox and not self.closed:
                await self._transport.send_text(self._outbox[0])
                self._outbox.popleft()
        except Exception:
            # The socket is gone: its reader sees it and detaches the connection; nothing
            # more is sent to it.
            self.closed = True
            self._outbox.clear()
        finally:
            # Nothing pending (or closed): the next `send` starts a new writer.
            self._writer = None


GoneCallback = Callable[[JoinGrant], Awaitable[None]]


@dataclass
class Room:
    members: dict[str, Connection] = field(default_factory=dict)
    dropped: dict[str, asyncio.Task[None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Attached:
    replaced: Connection | None
    rejoined: bool


class Hub:
    def __init__(
        self, *, rejoin_window: float, on_gone: GoneCallback, fabric: Fabric | None = None
    ) -> None:
        self._rooms: dict[str, Room] = {}
        # Participants of a room connected to other replicas, learnt from relayed frames.
        self._remote: dict[str, dict[str, str]] = {}
        self._rejoin_window = rejoin_window
        self._on_gone = on_gone
        self.fabric: Fabric = fabric or LocalFabric()

    def attach(self, connection: Connection) -> Attached:
        room = self._rooms.setdefault(connection.grant.room_id, Room())
        pid = connection.participant_id
        pending = room.dropped.pop(pid, None)
        if pending is not None:
            pending.cancel()
        replaced = room.members.get(pid)
        room.members[pid] = connection
        if replaced is not None:
            _log.warning(
                "connection_replaced", participant_id=pid, room=_short(room_id_of(connection))
            )
        return Attached(replaced=replaced, rejoined=pending is not None)

    def is_current(self, connection: Connection) -> bool:
        room = self._rooms.get(connection.grant.room_id)
        return room is not None and room.members.get(connection.participant_id) is connection

    def detach(self, connection: Connection, *, graceful: bool) -> bool:
        """Remove a closed connection; unless graceful, hold its place for the rejoin window.

        Returns False when a newer connection had already replaced it (nothing happened).
        """
        room = self._rooms.get(connection.grant.room_id)
        if room is None or room.members.get(connection.participant_id) is not connection:
            return False
        del room.members[connection.participant_id]
        if not graceful:
            room.dropped[connection.participant_id] = asyncio.create_task(
                self._expire(connection.grant), name=f"rejoin-{connection.participant_id}"
            )
        self._forget_if_empty(connection.grant.room_id)
        return True

    def remove(self, room_id: str, participant_id: str) -> Connection | None:
        """Take a participant out of the room for good (no rejoin slot, nothing recorded by
        the connection when it closes: the caller records the removal)."""
        room = self._rooms.get(room_id)
        if room is None:
            return None
        pending = room.dropped.pop(participant_id, None)
        if pending is not None:
            pending.cancel()
        connection = room.members.pop(participant_id, None)
        self._forget_if_empty(room_id)
        return connection

    def present(self, room_id: str) -> list[JoinGrant]:
        """Participants connected to this replica."""
        room = self._rooms.get(room_id)
        if room is None:
            return []
        return [c.grant for c in room.members.values()]

    def everyone(self, room_id: str) -> dict[str, str]:
        """participant id → role, on this replica and the others."""
        found = dict(self._remote.get(room_id, {}))
        found.update((g.participant_id, g.role.value) for g in self.present(room_id))
        return found

    def holding(self, room_id: str) -> int:
        """Connected anywhere, or within the rejoin window here."""
        room = self._rooms.get(room_id)
        local = 0 if room is None else len(room.members) + len(room.dropped)
        return local + len(self._remote.get(room_id, {}))

    def deliver(self, room_id: str, to: str, frame: Frame) -> bool:
        """To a participant here, else through the fabric; False when it cannot go."""
        if self.deliver_local(room_id, to, frame):
            return True
        return self.fabric.send(room_id, to, frame, None)

    def receive(self, room_id: str, to: str, exclude: str | None, frame: dict[str, Any]) -> None:
        """A frame from another replica: learn who is there, deliver to ours."""
        self._learn(room_id, frame)
        kind = frame.get("type")
        if kind == _PRESENCE:
            return
        if kind == "peer_joined" and not frame.get("rejoined"):
            self._announce(room_id)
        if to == "*":
            self._broadcast_local(room_id, frame, exclude)
        else:
            self.deliver_local(room_id, to, frame)

    def _announce(self, room_id: str) -> None:
        """A replica that just got a member of this room may not know ours (it started after
        they joined): tell it, so frames for them cross."""
        members = {grant.participant_id: grant.role.value for grant in self.present(room_id)}
        if members:
            self.fabric.send(room_id, "*", {"type": _PRESENCE, "members": members}, None)

    def _learn(self, room_id: str, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        remote = self._remote.setdefault(room_id, {})
        if kind == _PRESENCE:
            remote.update(frame["members"])
        elif kind == "peer_joined":
            remote[frame["participant_id"]] = frame["role"]
        elif kind == "peer_left" and frame.get("reason") != "dropped":
            remote.pop(frame["participant_id"], None)
        elif kind == "bye":
            remote.clear()
        if not remote:
            self._remote.pop(room_id, None)

    def deliver_local(self, room_id: str, to: str, frame: Frame) -> bool:
        room = self._rooms.get(room_id)
        target = room.members.get(to) if room else None
        if target is None:
            return False
        target.send(frame)
        return True

    def broadcast(self, room_id: str, frame: Frame, *, exclude: str | None = None) -> None:
        """To everyone in the room, on every replica.

        Room events (joins, departures, state) always cross, so other replicas learn who is
        where; chat crosses only when a member is known elsewhere: a room on one replica
        costs no NOTIFY round trip per message.
        """
        self._broadcast_local(room_id, frame, exclude)
        room_event = isinstance(frame, dict) and frame.get("type") in _ROOM_EVENTS
        if room_event or self._remote.get(room_id):
            self.fabric.send(room_id, "*", frame, exclude)

    def _broadcast_local(self, room_id: str, frame: Frame, exclude: str | None) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        for pid, connection in room.members.items():
            if pid != exclude:
                connection.send(text)

    async def close_room(self, room_id: str, code: int, reason: str) -> None:
        self._remote.pop(room_id, None)
        room = self._rooms.pop(room_id, None)
        if room is None:
            return
        for task in room.dropped.values():
            task.cancel()
        await asyncio.gather(*(c.close(code, reason) for c in room.members.values()))

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        for room_id in list(self._rooms):
            await self.close_room(room_id, code, reason)

    @property
    def connections(self) -> int:
        return sum(len(room.members) for room in self._rooms.values())

    async def _expire(self, grant: JoinGrant) -> None:
        await asyncio.sleep(self._rejoin_window)
        room = self._rooms.get(grant.room_id)
        if room is not None:
            room.dropped.pop(grant.participant_id, None)
            self._forget_if_empty(grant.room_id)
        try:
            await self._on_gone(grant)
        except Exception:
            _log.exception("participant_gone_not_recorded", participant_id=grant.participant_id)

    def _forget_if_empty(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is not None and not room.members and not room.dropped:
            del self._rooms[room_id]


def room_id_of(connection: Connection) -> str:
    return connection.grant.room_id


def _short(room_id: str) -> str:
    # Room ids are capabilities: logs carry only a prefix.
    return room_id[:6]
