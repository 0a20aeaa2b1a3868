"""A bug becomes a page in plain words (and a log entry), never a stack trace."""

from __future__ import annotations

import dataclasses

from aiohttp import web
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from booking_backend.main import create_app
from booking_backend.settings import Settings


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("a bug with internals in its message")


async def test_unexpected_errors_are_friendly(base_settings: Settings,
                                              aiohttp_client: AiohttpClient) -> None:
    settings = dataclasses.replace(base_settings, require_pass=False, dev=True)
    app = create_app(settings, registry=CollectorRegistry())
    app.router.add_get("/api/v1/broken", broken)
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    api = await client.get("/api/v1/broken")
    assert api.status == 500
    body = await api.json()
    assert body["error"] == "internal_error"
    assert "internals" not in body["message"]
    page = await client.get("/broken", headers={"Accept": "text/html"})
    assert page.status == 500
    html = await page.text()
    assert "<html" in html
    assert "Traceback" not in html
    assert "internals" not in html
