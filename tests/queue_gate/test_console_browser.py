"""The operators' console in a real Chromium (Debian's, driven by playwright; no browser is
downloaded): sign in, pause a room with a message and watch a waiting page in a second
browser show it within 10 s, reopen, change the rate, read the audit; the same without
JavaScript; axe-core on every console page (no serious or critical violations).

Two gate processes with their real tickers on a private Redis: the visitors' and the
operator's, whose admin port serves the console. With QUEUE_GATE_CONSOLE_SCREENSHOTS=1 the
pages are also saved at 1280 px to docs/img/console-*.png (for docs/operations.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from queue_gate.admin import create_admin_app
from queue_gate.main import create_app
from tests.browser import needs_chromium
from tests.queue_gate.conftest import gate_settings
from tests.queue_gate.test_live_browser import DEADLINE_S, equals, shows, text_of
from vaccine_queue.i18n import translator

playwright_api = pytest.importorskip("playwright.async_api")
axe_api = pytest.importorskip("axe_playwright_python.async_playwright")

OPERATOR_TOKEN = "console-ops-token-0123456789"
MESSAGE = "Pause bis 8:30 \u2013 <b>Impfstoff</b> kommt"
AHEAD = 40
EN = translator("en")
SCREENSHOTS = os.environ.get("QUEUE_GATE_CONSOLE_SCREENSHOTS") == "1"
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = needs_chromium


class Checked:
    """axe-core on each page it is shown (and a screenshot, when asked for)."""

    def __init__(self) -> None:
        self.axe = axe_api.Axe()
        self.pages: list[str] = []

    async def __call__(self, page: Any, name: str) -> None:
        results = await self.axe.run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"]
               if v.get("impact") in ("serious", "critical")]
        assert bad == [], f"{name}: {bad}"
        self.pages.append(name)
        if SCREENSHOTS:
            IMAGES.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(IMAGES / f"console-{name}.png"), full_page=True)


async def confirm_change(page: Any, form: str, fields: dict[str, str], consequence: str,
                         check: Checked | None = None, name: str = "") -> None:
    """Fill one of the room page's forms, check its consequence, confirm."""
    for selector, value in fields.items():
        element = page.locator(f"{form} {selector}")
        if await element.evaluate("e => e.tagName") == "SELECT":
            await element.select_option(value)
        else:
            await element.fill(value)
    await page.locator(f"{form} button[type=submit]").click()
    await page.wait_for_selector("#consequence")
    assert consequence in (await text_of(page, "#consequence") or ""), await text_of(
        page, "#consequence")
    if check is not None:
        await check(page, name)
    await page.click("#confirm")
    await page.wait_for_selector("#done")


async def test_the_console_in_chromium(
    browser: Any, redis_url: str, backend: TestServer,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    settings = gate_settings(redis_url, str(backend.make_url("/")), initial_rate_per_minute=20,
                             admin_tokens=(f"ops:{OPERATOR_TOKEN}",))
    visitors_gate = await aiohttp_server(create_app(settings, registry=CollectorRegistry()))
    operators_gate = create_app(settings, registry=CollectorRegistry())
    await aiohttp_server(operators_gate)
    admin = await aiohttp_server(create_admin_app(operators_gate))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as joiner:
        joined = await asyncio.gather(*(joiner.post(visitors_gate.make_url("/queue/api/join"))
                                        for _ in range(AHEAD)))
        assert {response.status for response in joined} == {201}
    console_url = str(admin.make_url("/console/"))
    check = Checked()

    visitor = await (await browser.new_context(locale="en-GB")).new_page()
    await visitor.goto(str(visitors_gate.make_url("/queue/wait?lang=en")))
    assert (await text_of(visitor, "#heading")) == EN("gate.heading")

    operator_context = await browser.new_context(
        locale="en-GB", viewport={"width": 1280, "height": 900})
    page = await operator_context.new_page()
    await page.goto(console_url + "?lang=en")
    assert page.url.startswith(str(admin.make_url("/console/login")))
    await check(page, "login")
    await page.fill("#token", "wrong-token")
    await page.click("button[type=submit]")
    assert await text_of(page, "#error-message") is not None
    await page.fill("#token", OPERATOR_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1:has-text('Rooms')")
    await check(page, "rooms")

    await page.click("a:has-text('Room default')")
    await page.wait_for_selector("#form-mode")
    await check(page, "room")
    # Pause with a message: the confirmation names the consequence, then a waiting page in
    # another browser shows it within 10 s.
    await confirm_change(page, "form[aria-labelledby=form-mode]",
                         {"#mode": "paused", "#message": MESSAGE},
                         "to nobody is admitted", check, "confirm")
    since = time.monotonic()
    await shows(visitor, {"#heading": equals(EN("gate.paused_heading")),
                          "#message": equals(MESSAGE)}, since)
    # Reopen, then halve the rate: the last visitor's wait doubles.
    await confirm_change(page, "form[aria-labelledby=form-mode]", {"#mode": "queue"},
                         "goes from nobody is admitted to about")
    await confirm_change(page, "form[aria-labelledby=form-rate]", {"#rate_per_minute": "10"},
                         "goes from about")
    since = time.monotonic()
    await shows(visitor, {"#heading": equals(EN("gate.heading"))}, since)

    # With JavaScript the figures follow the room without a reload: more visitors join.
    shown = await text_of(page, "dd[data-figure=waiting]")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as joiner:
        for _ in range(5):
            assert (await joiner.post(visitors_gate.make_url("/queue/api/join"))).status == 201
    await shows(page, {"dd[data-figure=waiting]": lambda text: text not in (None, shown)},
                time.monotonic())

    # A refused value: a readable page, checked too.
    await page.fill("#rate_per_minute", "fast")
    await page.click("form[aria-labelledby=form-rate] button[type=submit]")
    await page.wait_for_selector("#error-message")
    await check(page, "refused")

    await page.click("nav a:has-text('Audit')")
    await page.wait_for_selector("table.audit")
    await check(page, "audit")
    rows = await page.locator("table.audit tbody tr").all_text_contents()
    assert "ops" in rows[0] and "Rate per minute" in rows[0] and "10" in rows[0], rows[0]
    assert len(rows) == 4  # rate; mode back to queue; mode paused and the message

    # Plan a closing for tomorrow at 18:00 (the deployment's zone): the room lists it, and
    # the waiting page in the other browser says so within 10 s.
    await page.goto(str(admin.make_url("/console/rooms/default")))
    await page.wait_for_selector("#form-schedule")
    tomorrow = (dt.datetime.now(zoneinfo.ZoneInfo(settings.timezone))
                + dt.timedelta(days=1)).date()
    await page.fill("#schedule-date", tomorrow.isoformat())
    await page.fill("#schedule-time", "18:00")
    await page.select_option("#schedule-mode", "closed")
    await page.click("form[aria-labelledby=form-schedule] button[type=submit]")
    await page.wait_for_selector("#scheduled")
    await check(page, "schedule")
    assert "Closed" in (await page.locator("table.schedule").text_content() or "")
    since = time.monotonic()
    await shows(visitor, {"#next-change": lambda text: text is not None and text.startswith(
        "Booking closes on") and "18:00" in text}, since)

    # Without JavaScript: the same forms, posted and redirected.
    plain = await (await browser.new_context(locale="de-DE", java_script_enabled=False)
                   ).new_page()
    await plain.goto(console_url)
    await plain.fill("#token", OPERATOR_TOKEN)
    await plain.click("button[type=submit]")
    await plain.goto(str(admin.make_url("/console/rooms/default")))
    await confirm_change(plain, "form[aria-labelledby=form-rate]", {"#rate_per_minute": "30"},
                         "geht von")
    await plain.goto(str(admin.make_url("/console/audit")))
    first = (await plain.locator("table.audit tbody tr").all_text_contents())[0]
    assert "ops" in first and "30" in first, first
    await plain.click("header button[type=submit]")  # sign out
    await plain.wait_for_selector("#token")
    assert set(check.pages) == {"login", "rooms", "room", "confirm", "refused", "audit",
                                "schedule"}
    assert DEADLINE_S >= 10
