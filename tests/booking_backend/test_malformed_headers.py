"""Bytes that are not UTF-8 in the pass cookie or header, `Authorization` on the admin port
or `User-Agent` get a clear 4xx, never a 500 (sent raw: aiohttp's client would not)."""

from __future__ import annotations

import pytest

from tests.booking_backend.conftest import MakeEnv
from tests.raw_http import raw_request
from vaccine_queue.contract import PASS_COOKIE, PASS_HEADER

BAD = b"\xff\xfe\xc3(\x80"


@pytest.mark.parametrize("accept", [b"application/json", b"text/html"], ids=["api", "page"])
@pytest.mark.parametrize("header", [
    (PASS_HEADER, BAD),
    (PASS_HEADER, b"abc." + BAD),
    ("Cookie", PASS_COOKIE.encode() + b"=" + BAD),
    ("User-Agent", BAD),
    ("Authorization", b"Bearer " + BAD),
], ids=["pass-header", "pass-header-dotted", "pass-cookie", "user-agent", "authorization"])
async def test_the_pass_check_refuses_clearly(make_env: MakeEnv, accept: bytes,
                                              header: tuple[str, bytes]) -> None:
    env = await make_env(catalogue=False)
    for path in ("/", "/api/v1/centres"):
        response = await raw_request(env.client.port, "GET", path,
                                     [("Accept", accept), header])
        assert response.status == 403, response
        assert b"Traceback" not in response.body


async def test_an_admitted_visitor_with_an_odd_user_agent_is_served(make_env: MakeEnv) -> None:
    env = await make_env()
    response = await raw_request(env.client.port, "GET", "/api/v1/centres", [
        ("Accept", b"application/json"), (PASS_HEADER, env.pass_token().encode()),
        ("User-Agent", BAD)])
    assert response.status == 200, response


@pytest.mark.parametrize("value", [b"Bearer " + BAD, BAD])
async def test_the_admin_api_refuses_clearly(make_env: MakeEnv, value: bytes) -> None:
    env = await make_env(catalogue=False)
    response = await raw_request(env.admin.port, "GET", "/admin/stats",
                                 [("Authorization", value)])
    assert response.status == 401, response
    assert response.json()["error"] == "unauthorized"
