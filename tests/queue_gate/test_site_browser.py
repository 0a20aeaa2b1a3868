"""The waiting room in a real Chromium without JavaScript at 412 px is the same site as the
booking pages (tests/booking_backend/test_site_browser.py): the service and its operator in
the header and on the page, Impressum and Datenschutz in the footer, the same stylesheet;
axe-core finds no serious or critical violation; no text of the other language."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from queue_gate.main import create_app
from tests.booking_backend.test_site_browser import PHONE, Checked
from tests.browser import needs_chromium
from tests.queue_gate.conftest import gate_settings

pytestmark = needs_chromium


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_the_waiting_room_is_the_same_site(
        browser: Any, redis_url: str, backend: TestServer,
        aiohttp_server: Any, lang: str) -> None:
    settings = gate_settings(redis_url, str(backend.make_url("/")))
    gate = await aiohttp_server(create_app(settings, registry=CollectorRegistry()))
    context = await browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(str(gate.make_url(f"/queue/wait?lang={lang}")))
    await page.wait_for_selector("#about")
    auditor = await (await browser.new_context(viewport=PHONE)).new_page()
    check = Checked(lang, auditor, str(gate.make_url("/site/impressum")))
    await check(page, "waiting", settings.site.operator)
    about = await page.locator("#about").inner_text()
    assert settings.site.service_name in about and settings.site.operator in about
    # The same look: the site's stylesheet, from the gate itself.
    colour = await page.locator("header.site-header").evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(11, 61, 99)"  # --brand
    # The footer's links lead to pages the gate answers itself (demo placeholders). (Read,
    # not clicked: without JavaScript the waiting page reloads itself now and then.)
    await page.goto(str(gate.make_url(settings.site.impressum_url)))
    await page.wait_for_selector("h1")
    assert await page.locator("h1").inner_text() == check.t("site.impressum")
    await context.close()
