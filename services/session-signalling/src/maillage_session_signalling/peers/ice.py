"""Explicit ICE configuration for every aiortc peer.

aiortc falls back to Google's public STUN server when given `iceServers=None`, which stalls
~5 s per gathering offline; we always pass a list, empty for loopback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer


def rtc_configuration(servers: Iterable[Mapping[str, Any]] = ()) -> RTCConfiguration:
    ice_servers = [
        RTCIceServer(
            urls=list(server["urls"]),
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in servers
        if server.get("urls")
    ]
    return RTCConfiguration(iceServers=ice_servers)
