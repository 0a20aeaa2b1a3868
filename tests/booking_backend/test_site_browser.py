"""The one site in a real Chromium (Debian's, driven by playwright), without JavaScript, at
phone width (412 px): the booking pages and the waiting room
(tests/queue_gate/test_site_browser.py) carry the same header (the service and its operator)
and footer (Impressum, Datenschutz) in German and English; the appointments page is short (a
few pairs per centre for one day) and its day and time-of-day links work without
JavaScript; axe-core finds no serious or critical violation; no page holds a text of the
other language.

`SITE_SCREENSHOTS=1` writes the pages at 412 px to docs/img/site-*.png.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from tests.booking_backend.conftest import BERLIN, FIRST_DAY, HOME_POSTCODE, OLD, Env, MakeEnv
from tests.booking_backend.test_choosing import add_pairs_at
from tests.browser import needs_chromium
from tests.vaccine_queue.one_language import foreign_texts
from vaccine_queue.contract import PASS_COOKIE
from vaccine_queue.i18n import translator

playwright_api = pytest.importorskip("playwright.async_api")
axe_api = pytest.importorskip("axe_playwright_python.async_playwright")

pytestmark = needs_chromium

PHONE = {"width": 412, "height": 915}
SCREENSHOTS = os.environ.get("SITE_SCREENSHOTS") == "1"
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
# A generous bound on the page's height at 412 px: its frame (the demo banner, header,
# the day and time choosers, headings, footer) plus each centre's heading and address plus
# each pair. Measured (de, demo banner): 3,504 px for 18 pairs at 6 centres; the page listing
# every centre's earliest pairs before it took 9,114 px for 24 (issue 16: 6,786 px).
FRAME_PX = 1500
CENTRE_PX = 300
PAIR_PX = 40

class Checked:
    """axe-core (serious and critical), the other language, the site's header and footer.

    The pages are used without JavaScript, where axe cannot run: each page's HTML is
    audited in a second page of the same origin (so its stylesheet loads) that may run
    scripts."""

    def __init__(self, lang: str, auditor: Any, origin_page: str) -> None:
        self.axe = axe_api.Axe()
        self.lang = lang
        self.t = translator(lang)
        self.auditor = auditor
        self.origin_page = origin_page

    async def __call__(self, page: Any, name: str, operator: str) -> None:
        await self.auditor.goto(self.origin_page)
        await self.auditor.set_content(await page.content())
        results = await self.axe.run(self.auditor)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"]
               if v.get("impact") in ("serious", "critical")]
        assert bad == [], f"{name}: {bad}"
        assert foreign_texts(await page.content(), self.lang) == [], name
        header = await page.locator("header.site-header").inner_text()
        assert operator in header, (name, header)
        footer = page.locator("footer.site-footer")
        for text in (self.t("site.impressum"), self.t("site.privacy")):
            link = footer.get_by_role("link", name=text)
            assert await link.is_visible(), (name, text)
        if SCREENSHOTS:
            IMAGES.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(IMAGES / f"site-{name}-{self.lang}.png"),
                                  full_page=True)


async def height(page: Any) -> int:
    return int(await page.evaluate("document.documentElement.scrollHeight"))


async def fill_six_centres(env: Env) -> None:
    """Two weeks of mornings and afternoons at six centres: far more than a page shows."""
    times = [(h, m) for h in (8, 9, 10, 14, 15, 18) for m in (0, 20, 40)]
    catalogue = await env.backend.service.catalogue()
    nearest = catalogue.centres_for(HOME_POSTCODE, home_only=False,
                                    limit=env.settings.max_centres)
    assert len(nearest) == 6
    for centre in nearest:
        for offset in range(0, 10):
            await add_pairs_at(env, centre.id, FIRST_DAY + dt.timedelta(days=offset), times)


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_booking_pages_are_one_short_site_without_javascript(
        browser: Any, make_env: MakeEnv, lang: str) -> None:
    env = await make_env(demo=True, demo_days=1)
    await fill_six_centres(env)
    context = await browser.new_context(viewport=PHONE, java_script_enabled=False,
                                        locale="de-DE" if lang == "de" else "en-GB")
    base = str(env.client.make_url("/")).rstrip("/")
    await context.add_cookies([{"name": PASS_COOKIE, "value": env.pass_token("browser"),
                                "url": base}])
    page = await context.new_page()
    auditor = await (await browser.new_context(viewport=PHONE)).new_page()
    check = Checked(lang, auditor, f"{base}/site/impressum")
    operator = env.settings.site.operator

    await page.goto(f"{base}/?lang={lang}")
    await check(page, "start", operator)
    await page.fill("#birth_date", OLD)
    await page.fill("#postcode", HOME_POSTCODE)
    await page.click("form[action='/start'] button[type=submit]")
    await page.wait_for_selector("#showing")
    await check(page, "appointments", operator)
    pairs = await page.locator("input[name=first_slot]").count()
    centres = await page.locator("section.centre").count()
    shown = await height(page)
    assert (centres, pairs) == (6, 18)
    assert shown < FRAME_PX + centres * CENTRE_PX + pairs * PAIR_PX, shown

    # Another day and a time of day, by links (no script runs on this page).
    days = page.locator("nav[aria-labelledby=days-heading] a")
    assert await days.count() == 7
    wednesday = (FIRST_DAY + dt.timedelta(days=2)).isoformat()
    await days.and_(page.locator(f"[href*='day={wednesday}']")).click()
    await page.wait_for_selector("#showing")
    assert f"day={wednesday}" in page.url
    await page.locator("nav[aria-labelledby=times-heading] a").nth(3).click()  # evening
    await page.wait_for_selector("#showing")
    assert "time_of_day=evening" in page.url
    firsts = await page.locator("input[name=first_slot]").evaluate_all(
        "inputs => inputs.map(i => i.value)")
    assert len(firsts) == 18  # 18:00, 18:20, 18:40 at six centres
    assert all(dt.datetime.fromtimestamp(int(first.split("@")[1]), BERLIN).hour == 18
               for first in firsts)
    await check(page, "appointments-evening", operator)

    # "More" at the home centre (the whole day): its pairs of that day only.
    await page.locator("nav[aria-labelledby=times-heading] a").nth(0).click()  # all day
    await page.wait_for_selector("#showing")
    await page.locator("section.centre a[href*='centre=braunschweig']").click()
    await page.wait_for_selector("#showing")
    assert await page.locator("section.centre").count() == 1
    assert await page.locator("input[name=first_slot]").count() == 12
    await page.locator("section.centre button[type=submit]").first.click()
    await page.wait_for_selector("#name")
    await check(page, "details", operator)
    assert await page.locator(".privacy a").get_attribute("href") == env.settings.site.privacy_url
    await context.close()
