"""The demo's WebRTC participants: a kiosk agent (patient side) and a responder bot.

They speak session-signalling's protocol v1 over its WebSocket (JSON frames `{"v": 1, ...}`)
and carry real media between two aiortc peers: an audio track each way and, from the
kiosk, a `devices` data channel of oximeter readings. aiortc gathers every candidate before
its offer/answer, so SDPs are complete and no `candidate` frame is needed. No ICE server on
loopback: aiortc's default public STUN server would stall each gathering offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from websockets.asyncio.client import ClientConnection, connect

DEVICE_CHANNEL = "devices"
CONNECT_TIMEOUT_SECONDS = 30.0


class SessionFailedError(RuntimeError):
    """The call could not be set up or did not end as planned."""


def _configuration(ice_servers: Sequence[Mapping[str, Any]]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=list(server["urls"]),
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in ice_servers
        ]
    )


class _Peer:
    """A participant: its signalling WebSocket and one RTCPeerConnection (a 1:1 call)."""

    def __init__(self, url: str, token: str, ice_servers: Sequence[Mapping[str, Any]]) -> None:
        self._url = url
        self._token = token
        self._ice = ice_servers
        self._ws: ClientConnection | None = None
        self.pc: RTCPeerConnection | None = None
        self.state = ""
        self.peers: dict[str, str] = {}
        self.joined = asyncio.Event()
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.frames_received = 0
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._ws = await connect(self._url, max_size=2**20, open_timeout=CONNECT_TIMEOUT_SECONDS)
        await self.send({"type": "join", "token": self._token})
        self._spawn(self._read())

    async def send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps({"v": 1, **frame}))

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                await self.on_frame(json.loads(raw))
        except Exception as error:  # a dropped socket ends this peer's part of the call
            self.errors.append(repr(error))
        finally:
            self.ended.set()

    async def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "joined":
            self.state = frame["state"]
            self.peers = {p["participant_id"]: p["role"] for p in frame["peers"]}
            self.joined.set()
        elif kind == "peer_joined":
            self.peers[frame["participant_id"]] = frame["role"]
        elif kind == "state":
            self.state = frame["state"]
        elif kind == "bye":
            self.ended.set()
        elif kind == "answer" and self.pc is not None:
            await self.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer"))
        elif kind == "error":
            self.errors.append(f"{frame['code']}: {frame['message']}")

    def new_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(configuration=_configuration(self._ice))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._spawn(self._count_frames(track))

        pc.addTrack(AudioStreamTrack())
        self.pc = pc
        return pc

    async def _count_frames(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames_received += 1

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
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


class PatientSide(_Peer):
    """The kiosk (or the site's nurse): waits to be admitted, then offers media and, from a
    kiosk, streams device readings."""

    def __init__(
        self,
        url: str,
        token: str,
        ice_servers: Sequence[Mapping[str, Any]],
        *,
        devices: bool,
    ) -> None:
        super().__init__(url, token, ice_servers)
        self._devices = devices
        self.readings_sent = 0

    async def on_frame(self, frame: dict[str, Any]) -> None:
        await super().on_frame(frame)
        if frame["type"] == "state" and frame["state"] == "admitted" and self.pc is None:
            responder = self.peer_with("responder")
            if responder is not None:
                await self._offer(responder)

    async def _offer(self, responder: str) -> None:
        pc = self.new_connection()
        if self._devices:
            channel = pc.createDataChannel(DEVICE_CHANNEL)

            @channel.on("open")
            def on_open() -> None:
                self._spawn(self._stream_readings(channel))

        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "to": responder, "sdp": pc.localDescription.sdp})

    async def _stream_readings(self, channel: RTCDataChannel) -> None:
        while channel.readyState == "open":
            self.readings_sent += 1
            channel.send(json.dumps({"device": "oximeter", "seq": self.readings_sent, "spo2": 97}))
            await asyncio.sleep(0.2)


class ResponderBot(_Peer):
    """The professional: admits the waiting patient side, answers, ends the call."""

    def __init__(self, url: str, token: str, ice_servers: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(url, token, ice_servers)
        self.readings_received = 0
        self._admitted = False

    async def on_frame(self, frame: dict[str, Any]) -> None:
        await super().on_frame(frame)
        patient_waiting = self.state == "waiting" and (
            self.peer_with("patient") or self.peer_with("assistant")
        )
        if patient_waiting and not self._admitted:
            self._admitted = True
            await self.send({"type": "admit"})
        elif frame["type"] == "offer":
            await self._answer(frame)

    async def _answer(self, frame: dict[str, Any]) -> None:
        pc = self.new_connection()

        @pc.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                self.readings_received += 1

        await pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send({"type": "answer", "to": frame["from"], "sdp": pc.localDescription.sdp})


@dataclass(frozen=True, slots=True)
class CallResult:
    media_frames: int
    readings: int


async def run_call(
    patient: PatientSide, responder: ResponderBot, media_seconds: float
) -> CallResult:
    """Patient side joins first (waiting room), the responder joins and admits, media flows
    for `media_seconds`, then the responder ends the session for everyone."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            await patient.open()
            await patient.joined.wait()
            await responder.open()
            await asyncio.gather(patient.connected.wait(), responder.connected.wait())
        await asyncio.sleep(media_seconds)
        frames = responder.frames_received + patient.frames_received
        readings = responder.readings_received
        await responder.send({"type": "bye"})
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            await patient.ended.wait()
    except TimeoutError as error:
        raise SessionFailedError(
            f"call did not complete: patient state {patient.state!r} errors {patient.errors},"
            f" responder state {responder.state!r} errors {responder.errors}"
        ) from error
    finally:
        await asyncio.gather(patient.close(), responder.close())
    return CallResult(media_frames=frames, readings=readings)
