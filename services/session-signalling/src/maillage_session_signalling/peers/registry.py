"""Every server-side peer connection lives here, so shutdown closes them all."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import structlog
from aiortc import RTCPeerConnection

_log = structlog.get_logger(__name__)


class PeerRegistry:
    def __init__(self, *, max_peers: int = 200, lifetime_seconds: float = 120.0) -> None:
        self._peers: dict[str, RTCPeerConnection] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._max = max_peers
        self._lifetime = lifetime_seconds

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._peers

    def add(self, connection: RTCPeerConnection) -> str:
        if len(self._peers) >= self._max:
            raise OverflowError("too many pre-flight peers")
        peer_id = secrets.token_urlsafe(12)
        self._peers[peer_id] = connection
        # Bounded lifetime: a client that vanishes mid-check never leaks a peer.
        loop = asyncio.get_running_loop()
        self._timers[peer_id] = loop.call_later(
            self._lifetime, lambda: loop.create_task(self.close(peer_id))
        )
        _log.info("peer_opened", peer_id=peer_id)
        return peer_id

    async def close(self, peer_id: str) -> None:
        connection = self._peers.pop(peer_id, None)
        timer = self._timers.pop(peer_id, None)
        if timer is not None:
            timer.cancel()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
            _log.info("peer_closed", peer_id=peer_id)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(peer_id) for peer_id in list(self._peers)))
