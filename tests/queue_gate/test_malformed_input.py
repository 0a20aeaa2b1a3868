"""Bytes that are not UTF-8 in the headers a visitor or operator controls get a clear 4xx
(JSON for apps, the gate's page or the way to it for browsers), never a 500.

aiohttp reads header bytes as UTF-8 with surrogate escapes, so such a value is a `str` that
cannot be encoded again; every place that signs, hashes, compares or forwards it must cope.
The requests are sent as raw bytes over a real socket (aiohttp's client would not send them).
"""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.queue_gate.conftest import ADMIN_TOKEN, FakeClock, Gate, GateFactory
from tests.queue_gate.test_proxy import admit
from tests.raw_http import RawResponse, raw_request
from vaccine_queue.contract import PASS_COOKIE, PASS_HEADER, TICKET_COOKIE

BAD = b"\xff\xfe\xc3(\x80"  # never UTF-8: a lone 0xff, a broken two-byte sequence
JSON = ("Accept", b"application/json")
HTML = ("Accept", b"text/html")


def assert_clear_refusal(response: RawResponse, *, api: bool) -> None:
    assert response.status < 500, response
    assert b"Traceback" not in response.body
    if api and response.status >= 400:
        assert response.headers["content-type"].startswith("application/json"), response
        assert response.json()["error"]
    elif not api and response.status >= 400:
        assert response.headers["content-type"].startswith("text/html"), response


@pytest.mark.parametrize("accept", [JSON, HTML], ids=["api", "browser"])
@pytest.mark.parametrize("header", [
    (PASS_HEADER, BAD),
    (PASS_HEADER, b"abc." + BAD),
    ("Cookie", PASS_COOKIE.encode() + b"=" + BAD),
    ("Cookie", PASS_COOKIE.encode() + b"=x" + BAD + b"; other=1"),
    ("User-Agent", BAD),
    ("Authorization", b"Bearer " + BAD),
], ids=["pass-header", "pass-header-dotted", "pass-cookie", "pass-cookie-among", "user-agent",
        "authorization"])
async def test_the_proxy_refuses_clearly(gate: Gate, accept: tuple[str, bytes],
                                         header: tuple[str, bytes]) -> None:
    response = await raw_request(gate.client.port, "GET", "/book", [accept, header])
    assert_clear_refusal(response, api=accept == JSON)
    assert response.status in (303, 401), response


@pytest.mark.parametrize("path", ["/queue/api/status", "/queue/api/join", "/queue/wait"])
@pytest.mark.parametrize("header", [
    ("Authorization", b"Bearer " + BAD),
    ("Authorization", BAD),
    ("Cookie", TICKET_COOKIE.encode() + b"=" + BAD),
    ("Cookie", TICKET_COOKIE.encode() + b"=" + BAD + b"; lang=" + BAD),
    ("User-Agent", BAD),
    ("Accept-Language", BAD),
], ids=["bearer", "authorization", "ticket-cookie", "lang-cookie", "user-agent",
        "accept-language"])
async def test_the_queue_refuses_clearly(gate: Gate, path: str,
                                         header: tuple[str, bytes]) -> None:
    method = "POST" if path.endswith("/join") else "GET"
    api = path.startswith("/queue/api/")
    response = await raw_request(gate.client.port, method, path,
                                 [JSON if api else HTML, header])
    assert_clear_refusal(response, api=api)


@pytest.mark.parametrize("header", [
    ("User-Agent", BAD),
    ("X-Custom", BAD),
    ("Cookie", b"other=" + BAD),
], ids=["user-agent", "other-header", "other-cookie"])
async def test_an_admitted_visitor_with_odd_bytes_is_still_proxied(
    gate: Gate, clock: FakeClock, header: tuple[str, bytes]
) -> None:
    token = await admit(gate, clock)
    response = await raw_request(gate.client.port, "GET", "/anything",
                                 [JSON, (PASS_HEADER, token.encode()), header])
    assert response.status == 200, response
    assert response.json()["path"] == "/anything"


@pytest.mark.parametrize("value", [b"Bearer " + BAD, BAD, b"Bearer " + ADMIN_TOKEN.encode()
                                   + BAD])
async def test_the_admin_api_refuses_clearly(
    admin: TestClient[web.Request, web.Application], value: bytes
) -> None:
    for path in ("/admin/rooms", "/admin/rooms/default"):
        response = await raw_request(admin.port, "GET", path, [("Authorization", value)])
        assert response.status == 401, response
        assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize("path", ["/queue/api/join", "/book"])
async def test_a_forwarded_for_that_is_not_an_address(make_gate: GateFactory, path: str) -> None:
    gate = await make_gate(trusted_proxies=("127.0.0.0/8",), join_limit=5)
    method = "POST" if path.endswith("/join") else "GET"
    response = await raw_request(gate.client.port, method, path,
                                 [JSON, ("X-Forwarded-For", b"10.0.0.1, " + BAD)])
    assert_clear_refusal(response, api=True)
    assert response.status in (201, 401), response
