"""The signalling server: authenticates a WebSocket, then relays its frames in its room.

Transport-agnostic: it reads frames through `FrameSource` and writes through the hub's
`Transport`, so FastAPI's WebSocket is only wired in `api/signalling.py`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from maillage.session_signalling.v1 import events_pb2
from maillage_common.db.unit_of_work import UnitOfWork
from maillage_session_signalling.domain.flow import TokenBucket
from maillage_session_signalling.domain.lifecycle import (
    INVITED_ROLES,
    PATIENT_SIDE,
    LifecycleError,
    SessionState,
)
from maillage_session_signalling.domain.quality import LinkStats
from maillage_session_signalling.settings import SessionSignallingSettings
from maillage_session_signalling.signalling import protocol as p
from maillage_session_signalling.signalling.hub import (
    CLOSE_REMOVED,
    CLOSE_REPLACED,
    CLOSE_SESSION_OVER,
    Connection,
    Hub,
    Transport,
)
from maillage_session_signalling.signalling.metrics import CLOSED, CONNECTIONS, FRAMES_RELAYED
from maillage_session_signalling.signalling.tokens import (
    InvalidJoinTokenError,
    JoinGrant,
    JoinTokens,
)
from maillage_session_signalling.use_cases import sessions as use_cases

_log = structlog.get_logger(__name__)

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
_QUALITY_MIN_INTERVAL = 2.0
FAILURES = {
    "media_negotiation": events_pb2.FAILURE_REASON_MEDIA_NEGOTIATION,
    "network": events_pb2.FAILURE_REASON_NETWORK,
    "device": events_pb2.FAILURE_REASON_DEVICE,
    "kiosk_unavailable": events_pb2.FAILURE_REASON_KIOSK_UNAVAILABLE,
}
_CLOSING_STATES = frozenset({"noshow", "failed", "revoked"})
_CHAT_RELAYED = FRAMES_RELAYED.labels(type="chat")


class DisconnectedError(Exception):
    """The client went away."""


class FrameSource(Protocol):
    async def receive_frame(self) -> str | bytes:
        """The next frame; raises `DisconnectedError` when the client is gone."""
        ...


class RejectedError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class _Peer:
    connection: Connection
    bucket: TokenBucket
    source: FrameSource
    last_quality: float = 0.0

    @property
    def grant(self) -> JoinGrant:
        return self.connection.grant


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class SignallingServer:
    def __init__(
        self,
        settings: SessionSignallingSettings,
        tokens: JoinTokens,
        units: UnitOfWorkFactory,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._units = units
        self._states: dict[str, SessionState] = {}
        self.hub = Hub(rejoin_window=settings.rejoin_window_seconds, on_gone=self._gone)

    async def serve(self, room_id: str, source: FrameSource, transport: Transport) -> None:
        """Run one connection until it leaves, drops, or is closed."""
        try:
            grant = await self._authenticate(room_id, source)
        except RejectedError as rejected:
            CLOSED.labels(reason=rejected.reason).inc()
            await transport.close(rejected.code, rejected.reason)
            return
        except DisconnectedError:
            return
        except Exception as error:
            # Database away or overloaded: the client retries later; nothing half-written.
            _log.warning("join_unavailable", error=repr(error))
            CLOSED.labels(reason="unavailable").inc()
            await transport.close(CLOSE_TRY_AGAIN, "temporarily unavailable")
            return
        peer = _Peer(Connection(grant, transport), self._bucket(), source)
        CONNECTIONS.inc()
        graceful = False
        try:
            if await self._enter(peer):
                graceful = await self._relay_loop(peer)
        except RejectedError as rejected:
            CLOSED.labels(reason=rejected.reason).inc()
            await peer.connection.close(rejected.code, rejected.reason)
        except Exception as error:
            _log.warning("signalling_unavailable", error=repr(error))
            CLOSED.labels(reason="unavailable").inc()
            await peer.connection.close(CLOSE_TRY_AGAIN, "temporarily unavailable")
        finally:
            CONNECTIONS.dec()
            await self._exit(peer, graceful)

    async def _authenticate(self, room_id: str, source: FrameSource) -> JoinGrant:
        try:
            async with asyncio.timeout(self._settings.join_timeout_seconds):
                frame = await source.receive_frame()
        except TimeoutError as error:
            raise RejectedError(CLOSE_POLICY, "no join frame") from error
        message = self._parse(frame)
        if not isinstance(message, p.Join):
            raise RejectedError(CLOSE_POLICY, "the first frame must be join")
        try:
            grant = self._tokens.verify(message.token)
        except InvalidJoinTokenError as error:
            raise RejectedError(CLOSE_POLICY, "invalid join token") from error
        if grant.room_id != room_id:
            raise RejectedError(CLOSE_POLICY, "token not valid for this room")
        try:
            session = await use_cases.load_session(self._units(), grant.session_id)
        except use_cases.SessionNotFoundError as error:
            raise RejectedError(CLOSE_SESSION_OVER, "no such session") from error
        if session.room_id != room_id or session.lifecycle.closed:
            raise RejectedError(CLOSE_SESSION_OVER, "session is not open")
        if grant.invitation_id is not None and not await use_cases.invitation_active(
            self._units(), grant.session_id, grant.invitation_id
        ):
            raise RejectedError(CLOSE_REMOVED, "invitation revoked")
        self._states[room_id] = session.lifecycle.state
        others = set(self.hub.everyone(room_id)) - {grant.participant_id}
        if len(others) >= self._settings.max_participants:
            raise RejectedError(CLOSE_POLICY, "room is full")
        return grant

    async def _enter(self, peer: _Peer) -> bool:
        grant = peer.grant
        attached = self.hub.attach(peer.connection)
        if attached.replaced is not None:
            CLOSED.labels(reason="replaced").inc()
            await attached.replaced.close(CLOSE_REPLACED, "replaced by a newer connection")
        elif not attached.rejoined:
            try:
                session = await use_cases.participant_joined(
                    self._units(),
                    grant.session_id,
                    grant.participant_id,
                    grant.role,
                    grant.professional_id,
                    _now(),
                    grant.invitation_id,
                )
            except BaseException as error:
                # Not recorded as joined: leave no rejoin slot (and no ParticipantLeft) behind.
                self.hub.detach(peer.connection, graceful=True)
                if isinstance(error, use_cases.InvitationRevokedError):
                    raise RejectedError(CLOSE_REMOVED, str(error)) from error
                if isinstance(error, LifecycleError):
                    raise RejectedError(CLOSE_SESSION_OVER, str(error)) from error
                raise
            new_state = session.lifecycle.state
            # The newcomer learns the state from `joined`; the others from `state`.
            self._set_state(grant.room_id, new_state, exclude=grant.participant_id)
        rejoined = attached.rejoined or attached.replaced is not None
        peers = [
            p.PeerInfo(participant_id=pid, role=role)
            for pid, role in self.hub.everyone(grant.room_id).items()
            if pid != grant.participant_id
        ]
        peer.connection.send(
            p.Joined(
                type="joined",
                participant_id=grant.participant_id,
                role=grant.role.value,
                session_id=str(grant.session_id),
                state=self._states.get(grant.room_id, SessionState.SCHEDULED).value,
                peers=peers,
                rejoined=rejoined,
            ).model_dump()
        )
        self.hub.broadcast(
            grant.room_id,
            p.PeerJoined(
                type="peer_joined",
                participant_id=grant.participant_id,
                role=grant.role.value,
                rejoined=rejoined,
            ).model_dump(),
            exclude=grant.participant_id,
        )
        return True

    async def _relay_loop(self, peer: _Peer) -> bool:
        """Returns True when the participant left on purpose."""
        while True:
            try:
                frame = await peer.source.receive_frame()
            except DisconnectedError:
                return False
            if not peer.bucket.take(time.monotonic()):
                raise RejectedError(CLOSE_POLICY, "too many messages")
            message = self._parse(frame)
            try:
                outcome = await self._dispatch(peer, message)
            except (RejectedError, DisconnectedError):
                raise
            except Exception as error:
                # A failed database step: this frame had no effect; the connection goes on.
                _log.warning("frame_not_applied", type=message.type, error=repr(error))
                peer.connection.send(p.error("unavailable", "try again shortly"))
                continue
            if outcome is not None:
                return outcome

    def _parse(self, frame: str | bytes) -> p.ClientMessage:
        if isinstance(frame, bytes):
            raise RejectedError(CLOSE_POLICY, "binary frames are not accepted")
        limit = self._settings.max_message_bytes
        # UTF-8 takes at most 4 bytes a character: most frames need no encoding to check.
        if len(frame) * 4 > limit and len(frame.encode()) > limit:
            raise RejectedError(CLOSE_TOO_BIG, "frame too large")
        try:
            return p.CLIENT_MESSAGES.validate_json(frame)
        except ValidationError as error:
            raise RejectedError(CLOSE_POLICY, "malformed frame") from error

    async def _dispatch(self, peer: _Peer, message: p.ClientMessage) -> bool | None:
        grant = peer.grant
        match message:
            case p.Offer() | p.Answer() | p.Candidate() | p.Restart():
                await self._relay_media(peer, message)
            case p.Chat():
                _CHAT_RELAYED.inc()
                frame = p.relayed(message, grant.participant_id)
                self.hub.broadcast(grant.room_id, frame, exclude=grant.participant_id)
            case p.Admit():
                await self._admit(peer)
            case p.Quality():
                await self._quality(peer, message)
            case p.Leave():
                return True
            case p.Bye():
                return await self._bye(peer, message)
            case p.Join():
                peer.connection.send(p.error("already_joined", "this connection has joined"))
        return None

    async def _relay_media(
        self, peer: _Peer, message: p.Offer | p.Answer | p.Candidate | p.Restart
    ) -> None:
        grant = peer.grant
        if message.to == grant.participant_id:
            peer.connection.send(p.error("invalid_target", "cannot send to yourself"))
            return
        state = self._states.get(grant.room_id)
        target_role = self.hub.everyone(grant.room_id).get(message.to)
        patient_side_only = grant.role in PATIENT_SIDE and target_role in PATIENT_SIDE
        # Before admission, only the patient side may talk among itself (kiosk ↔ nurse).
        if state not in (SessionState.ADMITTED, SessionState.LIVE) and not patient_side_only:
            peer.connection.send(p.error("not_admitted", "the responder has not admitted yet"))
            return
        FRAMES_RELAYED.labels(type=message.type).inc()
        if not self.hub.deliver(
            grant.room_id, message.to, p.relayed(message, grant.participant_id)
        ):
            peer.connection.send(p.error("unknown_peer", "no such participant in this room"))
            return
        if isinstance(message, p.Answer) and state is SessionState.ADMITTED:
            session = await use_cases.media_connected(self._units(), grant.session_id, _now())
            self._set_state(grant.room_id, session.lifecycle.state)

    def from_other_replica(
        self, room_id: str, to: str, exclude: str | None, frame: dict[str, Any]
    ) -> None:
        """Frames relayed by another replica; room state changes update our cache."""
        kind = frame.get("type")
        if kind == "peer_left" and frame.get("reason") == "removed":
            self._close_removed(room_id, frame["participant_id"])
        self.hub.receive(room_id, to, exclude, frame)
        if kind == "state":
            self._states[room_id] = SessionState(frame["state"])
        if kind == "bye" or (kind == "state" and frame["state"] in _CLOSING_STATES):
            self._states.pop(room_id, None)
            asyncio.get_running_loop().create_task(
                self.hub.close_room(room_id, CLOSE_NORMAL, "session ended")
            )

    def remove_participant(self, room_id: str, participant_id: str) -> None:
        """An invitee's invitation was revoked (already recorded): out of the room, on every
        replica, without a rejoin slot."""
        self._close_removed(room_id, participant_id)
        frame = p.PeerLeft(type="peer_left", participant_id=participant_id, reason="removed")
        self.hub.broadcast(room_id, frame.model_dump())

    def _close_removed(self, room_id: str, participant_id: str) -> None:
        connection = self.hub.remove(room_id, participant_id)
        if connection is not None:
            CLOSED.labels(reason="removed").inc()
            asyncio.get_running_loop().create_task(
                connection.close(CLOSE_REMOVED, "removed from the session")
            )

    async def _admit(self, peer: _Peer) -> None:
        grant = peer.grant
        try:
            session = await use_cases.admit(self._units(), grant.session_id, grant.role, _now())
        except LifecycleError as error:
            peer.connection.send(p.error("not_allowed", str(error)))
            return
        self._set_state(grant.room_id, session.lifecycle.state)

    async def _quality(self, peer: _Peer, message: p.Quality) -> None:
        now = time.monotonic()
        if now - peer.last_quality < _QUALITY_MIN_INTERVAL:
            return
        peer.last_quality = now
        stats = LinkStats(
            message.rtt_ms, message.jitter_ms, message.loss_ratio, message.bitrate_kbps
        )
        grant = peer.grant
        await use_cases.report_quality(
            self._units(), grant.session_id, grant.participant_id, grant.role, stats, _now()
        )

    async def _bye(self, peer: _Peer, message: p.Bye) -> bool | None:
        grant = peer.grant
        if message.failure is None and grant.role in INVITED_ROLES:
            # An invitee does not end the consultation for everyone; they `leave`.
            peer.connection.send(p.error("not_allowed", "invitees leave with leave"))
            return None
        try:
            if message.failure is not None:
                reason = FAILURES[message.failure]
                session = await use_cases.fail_session(
                    self._units(), grant.session_id, reason, message.detail, _now()
                )
            else:
                session = await use_cases.end_session(
                    self._units(), grant.session_id, grant.role, _now()
                )
        except LifecycleError as error:
            peer.connection.send(p.error("not_allowed", str(error)))
            return None
        self._set_state(grant.room_id, session.lifecycle.state)
        for present in self.hub.present(grant.room_id):
            await self._record_left(present, "session_ended", anyone_left=True)
        self.hub.broadcast(grant.room_id, {"v": 1, "type": "bye"}, exclude=grant.participant_id)
        return True

    async def _exit(self, peer: _Peer, graceful: bool) -> None:
        grant = peer.grant
        detached = self.hub.detach(peer.connection, graceful=graceful)
        await peer.connection.stop_writer()
        if not detached:
            return
        reason = "hangup" if graceful else "dropped"
        self.hub.broadcast(
            grant.room_id,
            p.PeerLeft(
                type="peer_left", participant_id=grant.participant_id, reason=reason
            ).model_dump(),
        )
        state = self._states.get(grant.room_id)
        over = state in (SessionState.ENDED, SessionState.FAILED)
        if graceful and not over:
            await self._record_left(
                grant, "hangup", anyone_left=self.hub.holding(grant.room_id) > 0
            )
        if over:
            self._states.pop(grant.room_id, None)
            await self.hub.close_room(grant.room_id, CLOSE_NORMAL, "session ended")

    async def _gone(self, grant: JoinGrant) -> None:
        """The rejoin window passed without the participant coming back."""
        anyone = self.hub.holding(grant.room_id) > 0
        await self._record_left(grant, "connection_lost", anyone_left=anyone)

    async def _record_left(self, grant: JoinGrant, reason: str, *, anyone_left: bool) -> None:
        try:
            session = await use_cases.participant_left(
                self._units(),
                grant.session_id,
                grant.participant_id,
                grant.role,
                reason,
                _now(),
                anyone_left=anyone_left,
            )
        except Exception:
            # The WebSocket is already gone; the no-show/expiry scan settles the session.
            _log.exception("participant_left_not_recorded", participant_id=grant.participant_id)
            return
        self._set_state(grant.room_id, session.lifecycle.state)

    def _set_state(self, room_id: str, state: SessionState, exclude: str | None = None) -> None:
        if self._states.get(room_id) is state:
            return
        self._states[room_id] = state
        frame = p.StateChanged(type="state", state=state.value).model_dump()
        self.hub.broadcast(room_id, frame, exclude=exclude)

    def _bucket(self) -> TokenBucket:
        return TokenBucket.full(
            self._settings.flood_rate_per_second, self._settings.flood_burst, time.monotonic()
        )

    async def no_show_scan(self) -> int:
        """Declare due no-shows and close their rooms (whoever waited is told why)."""
        grace = timedelta(seconds=self._settings.noshow_grace_seconds)
        declared = await use_cases.declare_no_shows(self._units(), _now(), grace)
        for session in declared:
            self._set_state(session.room_id, session.lifecycle.state)
            self._states.pop(session.room_id, None)
            await self.hub.close_room(session.room_id, CLOSE_SESSION_OVER, "no-show")
        return len(declared)

    async def close(self) -> None:
        await self.hub.close_all()


def _now() -> datetime:
    return datetime.now(UTC)
