"""The checking page in a real Chromium (Debian's, driven by playwright; no browser is ever
downloaded): with JavaScript its worker solves the room's challenge and the browser lands
on its place in line; without JavaScript the page waits and continues by itself."""

from __future__ import annotations

from typing import Any

import pytest

from queue_gate.keys import store_key
from tests.browser import needs_chromium
from tests.queue_gate.conftest import FakeClock, GateFactory

playwright_api = pytest.importorskip("playwright.async_api")



pytestmark = needs_chromium

BITS = 12  # a few milliseconds here; the default difficulty's time is in bench/pow.py


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_the_waiting_page_solves_the_challenge_and_joins(
        make_gate: GateFactory, browser: Any, lang: str) -> None:
    gate = await make_gate()
    await gate.app[store_key].update_config({"challenge_bits": BITS})
    await gate.tick()
    context = await browser.new_context(locale=lang, viewport={"width": 390, "height": 800})
    page = await context.new_page()
    checking: list[str] = []
    page.on("response", lambda r: checking.append(r.url) if r.request.method == "POST" else None)
    await page.goto(str(gate.client.make_url(f"/queue/wait?next=/book&lang={lang}")))
    await page.wait_for_selector("#position", timeout=20_000)
    assert checking, "the page posted its solution"
    assert await page.locator("html").get_attribute("lang") == lang
    cookies = {c["name"] for c in await context.cookies()}
    assert "qg_ticket" in cookies
    await context.close()


async def test_without_javascript_the_page_continues_by_itself(
        make_gate: GateFactory, browser: Any, clock: FakeClock) -> None:
    gate = await make_gate(challenge_wait_s=1)
    await gate.app[store_key].update_config({"challenge_bits": BITS})
    await gate.tick()
    context = await browser.new_context(java_script_enabled=False, locale="en")
    page = await context.new_page()
    await page.goto(str(gate.client.make_url("/queue/wait")))
    assert "continues by itself" in await page.content()
    # The gate's clock is the test's: the second the browser waits passes for it too.
    clock.advance(1)
    await page.wait_for_selector("#position", timeout=20_000)
    await context.close()
