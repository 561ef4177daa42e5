"""The signalling WebSocket: `/v1/rooms/{room_id}/ws`, authenticated by the join frame."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from maillage_session_signalling.signalling.server import DisconnectedError, SignallingServer

router = APIRouter(tags=["signalling"])


class _FastApiSocket:
    """Adapts Starlette's WebSocket to the server's FrameSource and Transport."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def receive_frame(self) -> str | bytes:
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError) as error:
            raise DisconnectedError from error
        if message["type"] == "websocket.disconnect":
            raise DisconnectedError
        text = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def send_text(self, data: str) -> None:
        await self._ws.send_text(data)

    async def close(self, code: int, reason: str) -> None:
        if self._ws.application_state is not WebSocketState.DISCONNECTED:
            await self._ws.close(code, reason)


@router.websocket("/v1/rooms/{room_id}/ws")
async def signalling(websocket: WebSocket, room_id: str) -> None:
    """Protocol v1 (see the README); the join token in the first frame authorises."""
    server: SignallingServer = websocket.app.state.signalling
    await websocket.accept()
    adapter = _FastApiSocket(websocket)
    await server.serve(room_id, adapter, adapter)
