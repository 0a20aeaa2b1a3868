"""Operator grants in a real Chromium (Debian's, driven by playwright): a viewer of one room
sees only that room, its figures without the change forms and a note why, in German and
English, with and without JavaScript; another room is a readable "not found". axe-core on
each page shown with JavaScript (it runs as a script; no serious or critical violations)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from queue_gate.admin import create_admin_app
from queue_gate.main import create_app
from tests.browser import needs_chromium
from tests.queue_gate.conftest import gate_settings
from tests.queue_gate.test_console_browser import Checked
from tests.queue_gate.test_live_browser import text_of
from vaccine_queue.i18n import translator

pytest.importorskip("playwright.async_api")
pytest.importorskip("axe_playwright_python.async_playwright")

pytestmark = needs_chromium

DESK_TOKEN = "centre-desk-token-0123456789"


@pytest.mark.parametrize(("lang", "script"), [("en", True), ("de", False)])
async def test_a_room_viewer_in_chromium(
    browser: Any, redis_url: str, backend: TestServer,
    aiohttp_server: Callable[..., Awaitable[TestServer]], lang: str, script: bool,
) -> None:
    t = translator(lang)
    grants = ("centre-desk=viewer:centre",)
    tokens = (f"centre-desk:{DESK_TOKEN}",)
    state = create_app(gate_settings(redis_url, str(backend.make_url("/")), room="state",
                                     admin_tokens=tokens, operator_grants=grants),
                       registry=CollectorRegistry())
    centre = create_app(gate_settings(redis_url, str(backend.make_url("/")), room="centre",
                                      admin_tokens=tokens, operator_grants=grants),
                        registry=CollectorRegistry())
    await aiohttp_server(state)
    await aiohttp_server(centre)
    admin = await aiohttp_server(create_admin_app(state))
    axe = Checked()

    async def check(page: Any, name: str) -> None:
        if script:
            await axe(page, name)

    context = await browser.new_context(locale="en-GB" if lang == "en" else "de-DE",
                                        java_script_enabled=script)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await page.goto(str(admin.make_url(f"/console/?lang={lang}")))
    await page.fill("#token", DESK_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1")
    links = await page.locator("main h2 a").all_text_contents()
    assert links == [t("console.room", name="centre")], links
    await check(page, "rooms")

    await page.click("main h2 a")
    await page.wait_for_selector("#viewer-only")
    assert (await text_of(page, "#viewer-only") or "").strip() == t(
        "console.change.viewer_only")
    assert await page.locator("form[action$='/change']").count() == 0
    await check(page, "viewer-room")

    response = await page.goto(str(admin.make_url("/console/rooms/state")))
    assert response is not None and response.status == 404
    assert (await text_of(page, "#error-message") or "").strip() == t(
        "err.console_room_missing")
    await check(page, "not-covered")
