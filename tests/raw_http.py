"""Raw HTTP/1.1 over a real socket, for requests aiohttp's client refuses to send.

aiohttp's client encodes every header as UTF-8 text, so it cannot send the bytes a broken
client or an attacker sends (a lone 0xff in a cookie, Latin-1 in a User-Agent). These
helpers write the request's bytes as given and read the answer until the server closes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(port: int | None, method: str, path: str,
                      headers: list[tuple[str, bytes]], host: str = "127.0.0.1") -> RawResponse:
    """Send one request whose header values are raw bytes; `Connection: close` is added.
    `port` is a test client's (None only before its server started)."""
    assert port is not None, "the server is not started"
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    for name, value in headers:
        head += name.encode("ascii") + b": " + value + b"\r\n"
    head += b"Connection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        await writer.wait_closed()
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    parsed: dict[str, str] = {}
    for line in lines[1:]:
        field, _, text = line.partition(":")
        parsed[field.strip().lower()] = text.strip()
    if parsed.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return RawResponse(status, parsed, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out
