"""The gate answers the server's own limits with its styled page (JSON for its API and for
apps), in the visitor's language: a 20 kB address is a 414, not aiohttp's bare 400."""

from __future__ import annotations

import io

import pytest

from tests.queue_gate.conftest import Gate
from tests.raw_http import raw_request
from vaccine_queue.i18n import catalogue

LONG = "a" * 20_000


@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("path", ["/queue/wait?next=/", "/appointments?x="])
async def test_a_20kb_address_gets_the_styled_414(gate: Gate, lang: str, path: str) -> None:
    response = await raw_request(gate.client.port, "GET", path + LONG,
                                 [("Accept", b"text/html"), ("Accept-Language", lang.encode())])
    assert response.status == 414, response
    page = response.body.decode()
    assert response.headers["content-type"].startswith("text/html")
    assert catalogue(lang)["err.uri_too_long"] in page and f'<html lang="{lang}">' in page
    assert "Got more than" not in page


async def test_api_limits_are_json(gate: Gate) -> None:
    response = await raw_request(gate.client.port, "GET", "/queue/api/status?x=" + LONG,
                                 [("Accept-Language", b"de")])
    assert response.status == 414, response
    assert response.json()["error"] == "uri_too_long"
    assert response.json()["message"] == catalogue("de")["err.uri_too_long"]
    response = await raw_request(gate.client.port, "GET", "/queue/api/status",
                                 [("Cookie", b"x=" + LONG.encode())])
    assert (response.status, response.json()["error"]) == (431, "headers_too_large")
    async with gate.client.post("/queue/api/join", data=io.BytesIO(b"x" * (1024**2 + 1))) as resp:
        assert (resp.status, (await resp.json())["error"]) == (413, "body_too_large")
