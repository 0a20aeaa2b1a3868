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
    ("url", 414, "uri_too_long"), ("header", 431, "headers_too_large")])
async def test_limits_get_the_sites_page_in_the_visitors_language(
        make_env: MakeEnv, lang: str, case: str, status: int, code: str) -> None:
    env = await make_env(catalogue=False)
    headers = [("Accept", b"text/html"), ("Accept-Language", lang.encode())]
    path = "/"
    if case == "url":
        path = "/appointments?x=" + LONG
    else:
        headers.append(("X-Padding", LONG.encode()))
    response = await raw_request(env.client.port, "GET", path, headers)
    assert response.status == status, response
    assert response.headers["content-type"].startswith("text/html")
    page = response.body.decode()
    assert catalogue(lang)[f"err.{code}"] in page
    assert f'<html lang="{lang}">' in page and "/static/booking.css" in page
    assert "Got more than" not in page


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_a_body_over_the_limit_gets_the_sites_413(make_env: MakeEnv, lang: str) -> None:
    env = await make_env(catalogue=False)
    async with env.client.post("/start", data=b"x" * (env.settings.max_body_bytes + 1),
                               headers={"Accept": "text/html", "Accept-Language": lang,
                                        **env.headers()}) as resp:
        assert resp.status == 413
        page = await resp.text()
    assert catalogue(lang)["err.body_too_large"] in page and f'<html lang="{lang}">' in page


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
