"""A cheap HTTP/1.1 load generator client for the benchmarks.

The load generator shares the cores with the service it measures: every millisecond of CPU
it burns per request is taken from the service. httpx spends several milliseconds per
request (its pool, h11, its models); this client keeps persistent connections, writes each
request as one buffer and parses only the status line and Content-Length, on an
`asyncio.Protocol` (no stream objects). One request in flight per connection; connections
are opened on demand and reused. Enough for benchmark traffic to our own services (answers
with a Content-Length; no chunked bodies, redirects or TLS).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast


class HttpClientError(ConnectionError):
    """The connection broke, or the answer is not what this client understands."""


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self.usable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is not None and not self._waiter.done():
            self._complete(self._waiter)

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpClientError(f"connection lost: {exc!r}"))

    def _complete(self, waiter: asyncio.Future[Answer]) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        status = int(head[9:12])
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            self.usable = False
            waiter.set_exception(HttpClientError("an answer without Content-Length"))
            return
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop > 0 else len(head)])
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        if b"\r\nconnection: close" in head:
            self.usable = False
        waiter.set_result(Answer(status, body))

    async def exchange(self, request: bytes) -> Answer:
        if self._transport is None or not self.usable:
            raise HttpClientError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()


class KeepAliveClient:
    """Persistent HTTP/1.1 connections to one server, opened as concurrency needs them.

    `async with KeepAliveClient("http://127.0.0.1:8102", headers={...}) as client:
    answer = await client.post("/appointments", json={...})`.
    """

    def __init__(self, base_url: str, *, headers: Mapping[str, str] | None = None) -> None:
        scheme, _, rest = base_url.partition("://")
        if scheme != "http":
            raise ValueError("only http:// is supported")
        authority = rest.split("/", 1)[0]
        host, _, port = authority.rpartition(":")
        self._host, self._port = host, int(port)
        lines = [f"Host: {authority}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self._common = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []

    async def __aenter__(self) -> KeepAliveClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def get(self, target: str) -> Answer:
        return await self.request("GET", target)

    async def post(self, target: str, *, json: Any = None) -> Answer:
        body = _dumps(json).encode() if json is not None else b""
        return await self.request("POST", target, body, content_type=b"application/json")

    async def request(
        self, method: str, target: str, body: bytes = b"", *, content_type: bytes = b""
    ) -> Answer:
        head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + self._common
        if body or method != "GET":
            head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        if content_type:
            head += b"Content-Type: " + content_type + b"\r\n"
        connection = self._idle.pop() if self._idle else await self._open()
        try:
            answer = await connection.exchange(head + b"\r\n" + body)
        except BaseException:
            connection.close()
            raise
        if connection.usable:
            self._idle.append(connection)
        return answer

    async def _open(self) -> _Connection:
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, self._host, self._port
        )
        self._all.append(connection)
        return connection

    async def aclose(self) -> None:
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()


_dumps = json.JSONEncoder(separators=(",", ":")).encode
