"""Reference peers: a kiosk agent and a responder bot, speaking signalling protocol v1.

Both are plain aiortc peers driven by the signalling WebSocket; the tests and the demo use
them. aiortc gathers every candidate before an offer/answer (no trickle), so SDPs are
complete and `candidate` frames are not needed between these peers.

Rejoin: `drop_and_rejoin()` loses the network (media and signalling, no close frame) and
comes back with the same token within the rejoin window. The media path is then
renegotiated with an ICE restart: aiortc cannot restart ICE on a live RTCPeerConnection,
so a restart is a fresh one (new ICE credentials, new DTLS) offered by the kiosk — on its
own rejoin, or when the responder, back from a drop, sends `restart`.
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
from maillage_session_signalling.peers.stats import Counters, quality_sample

_log = structlog.get_logger(__name__)

DEVICE_CHANNEL = "devices"


class SignallingPeer:
    """One participant: a signalling WebSocket and one RTCPeerConnection (1:1 call)."""

    def __init__(
        self,
        url: str,
        token: str,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        quality_interval: float = 10.0,
    ) -> None:
        self._url = url
        self._token = token
        self._ice = list(ice_servers)
        # Seconds between `quality` reports (the server keeps at most one per 2 s).
        self._quality_interval = quality_interval
        self.quality_reports = 0
        self._ws: ClientConnection | None = None
        # Each signalling connection in turn (a new one after a rejoin) for `run`.
        self._sockets: asyncio.Queue[ClientConnection] = asyncio.Queue()
        self._rejoining = False
        self.pc: RTCPeerConnection | None = None
        # Media connections established so far (the first, then one per ICE restart).
        self.media_connections = 0
        self.rejoins = 0
        self.participant_id = ""
        self.state = ""
        self.peers: dict[str, str] = {}
        self.frames_received = 0
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def _connect(self) -> None:
        self._ws = await connect(self._url, max_size=2**20, open_timeout=30)
        await self.send({"type": "join", "token": self._token})
        self._sockets.put_nowait(self._ws)

    async def drop_and_rejoin(self) -> None:
        """Lose the network (media stops, the socket dies without a close frame), then
        rejoin with the same token; the media path is renegotiated (ICE restart)."""
        assert self._ws is not None
        self._rejoining = True
        await self._close_media()
        transport = self._ws.transport
        transport.abort()
        self.rejoins += 1
        await self._connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps({"v": 1, **frame}))

    async def run(self) -> None:
        """Handle signalling frames until the session ends or the socket closes."""
        while True:
            ws = await self._sockets.get()
            self._rejoining = False
            with contextlib.suppress(Exception):
                async for raw in ws:
                    frame = json.loads(raw)
                    await self.on_frame(frame)
            if not self._rejoining:
                break
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
                self.media_connections += 1
                self.connected.set()
                self._spawn(self._report_quality(pc))

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

    async def _report_quality(self, pc: RTCPeerConnection) -> None:
        """Periodic link stats of this media connection → `quality` frames."""
        previous: Counters | None = None
        while self.pc is pc and pc.connectionState == "connected":
            report = await pc.getStats()
            sample, previous = quality_sample(report.values(), time.monotonic(), previous)
            if sample is not None:
                with contextlib.suppress(Exception):  # signalling down: the next one goes
                    await self.send({"type": "quality", **sample})
                    self.quality_reports += 1
            await asyncio.sleep(self._quality_interval)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def peer_with(self, role: str) -> str | None:
        return next((pid for pid, r in self.peers.items() if r == role), None)

    def rejoined_under_way(self, frame: dict[str, Any]) -> bool:
        """Our own `joined` after a rejoin, in a session whose media had been negotiated."""
        return (
            frame["type"] == "joined"
            and bool(frame.get("rejoined"))
            and frame["state"] in ("admitted", "live")
        )

    async def _close_media(self) -> None:
        pc, self.pc = self.pc, None
        if pc is not None:
            await pc.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._close_media()
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
        quality_interval: float = 10.0,
    ) -> None:
        super().__init__(url, token, ice_servers, quality_interval)
        self._interval = reading_interval
        self.readings_sent = 0

    async def on_frame(self, frame: dict[str, Any]) -> None:
        await super().on_frame(frame)
        admitted = frame["type"] == "state" and frame["state"] == "admitted"
        # After a drop (ours, or the responder's `restart`): a fresh offer, new ICE.
        restart = self.rejoined_under_way(frame) or frame["type"] == "restart"
        if (admitted and self.pc is None) or restart:
            responder = self.peer_with("responder")
            if responder is not None:
                await self._offer(responder)

    async def _offer(self, responder: str) -> None:
        await self._close_media()
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

    def __init__(
        self,
        url: str,
        token: str,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        quality_interval: float = 10.0,
    ) -> None:
        super().__init__(url, token, ice_servers, quality_interval)
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
        elif self.rejoined_under_way(frame):
            patient = self.peer_with("patient")
            if patient is not None:
                await self.send({"type": "restart", "to": patient})

    async def _answer(self, frame: dict[str, Any]) -> None:
        # A new offer renegotiates from scratch (ICE restart): the previous path is gone.
        await self._close_media()
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
