"""The server's own limits answered as the site's page (or JSON for the API), in the
visitor's language: a 20 kB address (414), an over-long header (431), a body over the limit
(413). Sent raw: aiohttp's parser would otherwise answer a bare English 400 first."""

from __future__ import annotations

import pytest

from tests.booking_backend.conftest import MakeEnv
from tests.raw_http import raw_request
from vaccine_queue.i18n import catalogue

LONG = "a" * 20_000


@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize(("case", "status", "code"), [
    ("url", 414, "uri_too_long"), ("header", 431, "headers_too_large"),
    ("body", 413, "body_too_large")])
async def test_limits_get_the_sites_page_in_the_visitors_language(
        make_env: MakeEnv, lang: str, case: str, status: int, code: str) -> None:
    env = await make_env(catalogue=False)
    headers = [("Accept", b"text/html"), ("Accept-Language", lang.encode())]
    path, method = "/", "GET"
    if case == "url":
        path = "/appointments?x=" + LONG
    elif case == "header":
        headers.append(("X-Padding", LONG.encode()))
    else:
        method = "POST"
        path = "/start"
        headers.append(("Content-Length", b"10000000"))
    response = await raw_request(env.client.port, method, path, headers)
    assert response.status == status, response
    assert response.headers["content-type"].startswith("text/html")
    page = response.body.decode()
    assert catalogue(lang)[f"err.{code}"] in page
    assert f'<html lang="{lang}">' in page and "/static/booking.css" in page
    assert "Got more than" not in page


@pytest.mark.parametrize(("extra", "status", "code"), [
    ("url", 414, "uri_too_long"), ("header", 431, "headers_too_large")])
async def test_the_api_gets_json_for_its_limits(make_env: MakeEnv, extra: str, status: int,
                                                code: str) -> None:
    env = await make_env(catalogue=False)
    headers = [("Accept", b"application/json"), ("Accept-Language", b"en")]
    path = "/api/v1/centres"
    if extra == "url":
        path += "?x=" + LONG
    else:
        headers.append(("Cookie", b"x=" + LONG.encode()))
    response = await raw_request(env.client.port, "GET", path, headers)
    assert response.status == status, response
    assert response.json() == {"error": code, "message": catalogue("en")[f"err.{code}"]}
