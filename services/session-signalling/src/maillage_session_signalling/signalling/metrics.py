from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge(
    "maillage_session_signalling_connections", "Open signalling WebSockets on this replica"
)
FRAMES_RELAYED = Counter(
    "maillage_session_signalling_frames_relayed_total", "Frames relayed to a peer", ["type"]
)
CLOSED = Counter(
    "maillage_session_signalling_connections_closed_total",
    "Connections closed by the server",
    ["reason"],
)
