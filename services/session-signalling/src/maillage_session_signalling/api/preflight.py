"""Pre-flight check: a WebRTC connection to the server's echo peer, then a verdict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from maillage_common.auth import Principal, Role, requires
from maillage_common.http.problems import Problem
from maillage_session_signalling.api.schemas import (
    PreflightAnswer,
    PreflightOffer,
    PreflightReport,
    PreflightVerdictRead,
    ice,
)
from maillage_session_signalling.domain.quality import LinkStats, preflight_verdict, quality_level
from maillage_session_signalling.peers.echo import EchoPeer, open_echo_peer
from maillage_session_signalling.peers.registry import PeerRegistry
from maillage_session_signalling.settings import SessionSignallingSettings

router = APIRouter(prefix="/v1/preflight", tags=["preflight"])
Checker = Annotated[Principal, requires(Role.KIOSK, Role.NURSE, Role.RESPONDER)]


@router.post("", response_model=PreflightAnswer)
async def start_preflight(
    body: PreflightOffer, caller: Checker, request: Request
) -> PreflightAnswer:
    """Answer the client's offer with the echo peer; probe it over a data channel."""
    settings: SessionSignallingSettings = request.app.state.signalling_settings
    registry: PeerRegistry = request.app.state.peers
    servers = [{"urls": list(settings.ice_servers)}] if settings.ice_servers else []
    try:
        peer = await open_echo_peer(registry, body.sdp, servers)
    except OverflowError as error:
        raise Problem(503, "Busy", str(error), headers={"Retry-After": "5"}) from error
    except ValueError as error:
        raise Problem(422, "Invalid offer", str(error)) from error
    preflights: dict[str, EchoPeer] = request.app.state.preflights
    # Checks whose peer expired unreported are forgotten here (the registry closed them).
    for stale in [key for key in preflights if key not in registry]:
        del preflights[stale]
    preflights[peer.peer_id] = peer
    return PreflightAnswer(
        preflight_id=peer.peer_id, type="answer", sdp=peer.answer_sdp, ice_servers=ice(servers)
    )


@router.post("/{preflight_id}/report", response_model=PreflightVerdictRead)
async def finish_preflight(
    preflight_id: str, body: PreflightReport, caller: Checker, request: Request
) -> PreflightVerdictRead:
    """The client's measurements over the echo → level and verdict; the echo peer closes."""
    peer: EchoPeer | None = request.app.state.preflights.pop(preflight_id, None)
    if peer is None:
        raise Problem(404, "Not found", "no such pre-flight check")
    registry: PeerRegistry = request.app.state.peers
    await registry.close(preflight_id)
    stats = LinkStats(body.rtt_ms, body.jitter_ms, body.loss_ratio, body.bitrate_kbps)
    # Nothing echoed means no media path, whatever the client claims.
    if peer.echoed == 0:
        stats = LinkStats(body.rtt_ms, body.jitter_ms, 1.0, 0.0)
    return PreflightVerdictRead(
        preflight_id=preflight_id,
        rtt_ms=stats.rtt_ms,
        jitter_ms=stats.jitter_ms,
        loss_ratio=stats.loss_ratio,
        bitrate_kbps=stats.bitrate_kbps,
        level=quality_level(stats).value,
        verdict=preflight_verdict(stats).value,
        echoed_messages=peer.echoed,
    )
