"""A small HTTP/1.1 client for the rush generator: keep-alive connections over asyncio
protocols, nothing else. The aiohttp client spent about 0.6 ms of CPU per request in the
50,000-visitor rush, so the generator took a whole core from the two that the gates, Redis
and the backend share; this one spends a fraction of that (figures in docs/benchmarks.md).

It speaks only what the benchmark needs: one request at a time per connection, bodies with
Content-Length or chunked, no TLS, no redirects, no cookies. Any error closes the
connection; the caller counts it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

Headers = dict[str, str]


class HTTPError(Exception):
    """The connection failed or the answer could not be read."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            answer = self._parse()
        except (ValueError, IndexError) as exc:
            self.waiter.set_exception(HTTPError(f"bad response: {exc}"))
            self.close()
            return
        if answer is not None:
            self.waiter.set_result(answer)

    def _parse(self) -> tuple[int, bytes] | None:
        """One whole response from the buffer (removed from it), or None for not yet."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length, chunked = None, False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                self.keep_alive = False
        start = end + 4
        if chunked:
            body = bytearray()
            at = start
            while True:
                line_end = self.buffer.find(b"\r\n", at)
                if line_end < 0:
                    return None
                size = int(bytes(self.buffer[at:line_end]).split(b";")[0], 16)
                if len(self.buffer) < line_end + 2 + size + 2:
                    return None
                body += self.buffer[line_end + 2:line_end + 2 + size]
                at = line_end + 2 + size + 2
                if size == 0:
                    break
            del self.buffer[:at]
            return status, bytes(body)
        if length is None:
            length = 0
        if len(self.buffer) < start + length:
            return None
        body_bytes = bytes(self.buffer[start:start + length])
        del self.buffer[:start + length]
        return status, body_bytes

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Client:
    """Keep-alive connections per host; `request` returns (status, body bytes)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def request(self, method: str, url: str, *, headers: Headers | None = None,
                      json_body: Any = None, params: dict[str, str] | None = None,
                      limit_s: float = 10.0) -> tuple[int, bytes]:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path or "/"
        if params:
            path += "?" + urlencode(params)
        elif parts.query:
            path += "?" + parts.query
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        body = b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            lines.append("Content-Type: application/json")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        key = (host, port)
        async with asyncio.timeout(limit_s):
            connection, reused = await self._connection(key)
            try:
                answer = await connection.exchange(request)
            except HTTPError:
                connection.close()
                if not reused:
                    raise
                # The server closed an idle keep-alive connection as we reused it: like a
                # browser, try once more on a new one.
                connection, _ = await self._connection(key, fresh=True)
                answer = await connection.exchange(request)
            except BaseException:
                connection.close()
                raise
        if connection.keep_alive and not connection.closed and not connection.buffer:
            self._idle.setdefault(key, []).append(connection)
        else:
            connection.close()
        return answer

    async def _connection(self, key: tuple[str, int],
                          fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection to `key` and whether it was reused."""
        idle = self._idle.get(key)
        while idle and not fresh:
            connection = idle.pop()
            if not connection.closed:
                return connection, True
        try:
            _transport, connection = await asyncio.get_running_loop().create_connection(
                _Connection, *key)
        except OSError as exc:
            raise HTTPError(f"cannot connect: {exc}") from exc
        return connection, False

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
