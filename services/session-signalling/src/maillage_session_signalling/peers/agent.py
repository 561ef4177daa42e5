"""Reference peers: a kiosk agent and a responder bot, speaking signalling protocol v1.

Both are plain aiortc peers driven by the signalling WebSocket; the tests and the demo use
them. aiortc gathers every candidate before an offer/answer (no trickle), so SDPs are
complete and `candidate` frames are not needed between these peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

import structlog
from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from websockets.asyncio.client import ClientConnection, connect

from maillage_session_signalling.peers.ice import rtc_configuration
from maillage_session_signalling.peers.media import PatternVideoTrack

_log = structlog.get_logger(__name__)

DEVICE_CHANNEL = "devices"


class SignallingPeer:
    """One participant: a signalling WebSocket and one RTCPeerConnection (1:1 call)."""

    def __init__(self, url: str, token: str, ice_servers: Sequence[Mapping[str, Any]] = ()) -> None:
        self._url = url
        self._token = token
        self._ice = list(ice_servers)
        self._ws: ClientConnection | None = None
        self.pc: RTCPeerConnection | None = None
        self.participant_id = ""
        self.state = ""
        self.peers: dict[str, str] = {}
        self.frames_received = 0
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._ws = await connect(self._url, max_size=2**20, open_timeout=30)
        await self.send({"type": "join", "token": self._token})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps({"v": 1, **frame}))

    async def run(self) -> None:
        """Handle signalling frames until the session ends or the socket closes."""
        assert self._ws is not None
        with contextlib.suppress(Exception):
            async for raw in self._ws:
                frame = json.loads(raw)
                await self.on_frame(frame)
        self.ended.set()

    async def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "joined":
            self.participant_id = frame["participant_id"]
            self.state = frame["state"]
            self.peers = {p["participant_id"]: p["role"] for p in frame["peers"]}
        elif kind == "peer_joined":
            self.peers[frame["participant_id"]] = frame["role"]
        elif kind == "peer_left" and frame["reason"] == "hangup":
            self.peers.pop(frame["participant_id"], None)
        elif kind == "state":
            self.state = frame["state"]
        elif kind == "bye":
            self.ended.set()
        elif kind == "answer" and self.pc is not None:
            answer = RTCSessionDescription(sdp=frame["sdp"], type="answer")
            await self.pc.setRemoteDescription(answer)
        elif kind == "error":
            _log.warning("signalling_error", code=frame["code"], detail=frame["message"])

    def new_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(configuration=rtc_configuration(self._ice))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._spawn(self._count_frames(track))

        self.pc = pc
        return pc

    async def _count_frames(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames_received += 1

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def peer_with(self, role: str) -> str | None:
        return next((pid for pid, r in self.peers.items() if r == role), None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self._ws is not None:
            await self._ws.close()


class KioskAgent(SignallingPeer):
    """The patient side: once admitted, offers a test-pattern video and a device channel."""

    def __init__(
        self,
        url: str,
        token: str,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        reading_interval: float = 0.1,
    ) -> None:
        super().__init__(url, token, ice_servers)
        self._interval = reading_interval
        self.readings_sent = 0

    async def on_frame(self, frame: dict[str, Any]) -> None:
        await super().on_frame(frame)
        admitted = frame["type"] == "state" and frame["state"] == "admitted"
        if admitted and self.pc is None:
            responder = self.peer_with("responder")
            if responder is not None:
                await self._offer(responder)

    async def _offer(self, responder: str) -> None:
        pc = self.new_connection()
        pc.addTrack(PatternVideoTrack())
        channel = pc.createDataChannel(DEVICE_CHANNEL)

        @channel.on("open")
        def on_open() -> None:
            self._spawn(self._stream_readings(channel))

        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "to": responder, "sdp": pc.localDescription.sdp})

    async def _stream_readings(self, channel: RTCDataChannel) -> None:
        """Pulse-oximeter readings, as a connected device would stream them."""
        while channel.readyState == "open":
            self.readings_sent += 1
            reading = {"device": "oximeter", "seq": self.readings_sent, "spo2": 97, "pulse": 72}
            channel.send(json.dumps({**reading, "t": time.time()}))
            await asyncio.sleep(self._interval)


class ResponderBot(SignallingPeer):
    """The professional: admits the waiting patient, answers, collects video and readings."""

    def __init__(self, url: str, token: str, ice_servers: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(url, token, ice_servers)
        self.readings: list[dict[str, Any]] = []
        self._admitting = False

    async def on_frame(self, frame: dict[str, Any]) -> None:
        await super().on_frame(frame)
        waiting = self.state == "waiting" and self.peer_with("patient") is not None
        if waiting and not self._admitting:
            self._admitting = True
            await self.send({"type": "admit"})
        elif frame["type"] == "offer":
            await self._answer(frame)

    async def _answer(self, frame: dict[str, Any]) -> None:
        pc = self.new_connection()

        @pc.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                self.readings.append(json.loads(message))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=frame["sdp"], type="offer"))
        pc.addTrack(PatternVideoTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send({"type": "answer", "to": frame["from"], "sdp": pc.localDescription.sdp})

    async def end_session(self) -> None:
        await self.send({"type": "bye"})
