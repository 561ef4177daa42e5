"""The pre-flight echo peer: answers an offer, echoes every data-channel message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from maillage_session_signalling.peers.ice import rtc_configuration
from maillage_session_signalling.peers.registry import PeerRegistry


@dataclass
class EchoPeer:
    peer_id: str
    answer_sdp: str
    counter: list[int]

    @property
    def echoed(self) -> int:
        return self.counter[0]


async def open_echo_peer(
    registry: PeerRegistry, offer_sdp: str, ice_servers: Iterable[Mapping[str, Any]]
) -> EchoPeer:
    connection = RTCPeerConnection(configuration=rtc_configuration(ice_servers))
    counter = [0]
    peer_id = registry.add(connection)

    @connection.on("datachannel")
    def on_channel(channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            counter[0] += 1
            channel.send(message)

    await connection.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    await connection.setLocalDescription(await connection.createAnswer())
    local = connection.localDescription
    return EchoPeer(peer_id=peer_id, answer_sdp=local.sdp, counter=counter)
