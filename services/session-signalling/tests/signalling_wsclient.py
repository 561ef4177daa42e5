"""A tiny signalling client for tests (websockets library)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 30.0


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def join(cls, url: str, token: str) -> tuple[Client, dict[str, Any]]:
        ws = await connect(url, max_size=None, open_timeout=TIMEOUT)
        client = cls(ws)
        await client.send({"type": "join", "token": token})
        return client, await client.expect("joined")

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"v": 1, **frame}))

    async def expect(self, frame_type: str) -> dict[str, Any]:
        """The next frame of `frame_type` (others are skipped)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if frame["type"] == frame_type:
                    return frame

    async def closed_with(self) -> int | None:
        """Read until the server closes; the close code it sent."""
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.ws.close()
