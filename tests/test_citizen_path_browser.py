"""The citizen's whole way through, in real Chromium (Debian's, driven by playwright): the
waiting room, admitted, the start page, choosing a pair, holding it, the details, the code,
the confirmation (reloaded, its calendar file downloaded), managing the booking and
cancelling it, through the real gate in front of the real booking backend. In German and in
English, with and without JavaScript, at a phone's 412 px and a desktop's 1280 px; axe-core
on every page of the runs with JavaScript (no serious or critical violations) and no page
holding a text of the other language.

The gate (ticker running, rate high enough to admit at once, the demo's bypass paths) and
the backend (a fresh database of the private PostgreSQL, demo catalogue) share one clock
that runs in real time from a Friday morning of January 2021, when the test pairs are next
Monday's. With QUEUE_GATE_CITIZEN_SCREENSHOTS=1 the 412 px pages are saved to
docs/img/citizen-<lang>-<n>-<page>.png (for the README and docs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from booking_backend import keys as booking_keys
from booking_backend.main import create_admin_app as create_booking_admin_app
from booking_backend.main import create_app as create_booking_app
from booking_backend.settings import Settings as BookingSettings
from queue_gate.admin import create_admin_app as create_gate_admin_app
from queue_gate.main import create_app as create_gate_app
from queue_gate.settings import DEMO_BYPASS_PATHS
from tests.booking_backend.conftest import (
    ADMIN_TOKEN as BOOKING_ADMIN_TOKEN,
)
from tests.booking_backend.conftest import (
    CENTRE,
    HOME_POSTCODE,
    OLD,
    START,
    RecordingSender,
    contact_address,
    pair_slots,
)
from tests.browser import needs_chromium
from tests.queue_gate.conftest import ADMIN_TOKEN as GATE_ADMIN_TOKEN
from tests.queue_gate.conftest import SECRET, gate_settings
from tests.vaccine_queue.one_language import foreign_texts

playwright_api = pytest.importorskip("playwright.async_api")
axe_api = pytest.importorskip("axe_playwright_python.async_playwright")

pytestmark = needs_chromium

SCREENSHOTS = os.environ.get("QUEUE_GATE_CITIZEN_SCREENSHOTS") == "1"
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "img"
# The longest the test waits for one step (admission, a page): generous for a loaded CI.
STEP_MS = 30_000
PAIRS = 4


class RunningClock:
    """Real time, moved back to `start`: both servers agree, and the test pairs lie ahead."""

    def __init__(self, start: float) -> None:
        self._offset = start - time.time()

    def __call__(self) -> float:
        return time.time() + self._offset


@dataclasses.dataclass
class Site:
    gate_url: str
    sender: RecordingSender
    deliver: Callable[[], Awaitable[int]]
    open_room: Callable[[], Awaitable[None]]


@pytest.fixture
async def site(database_url: str, redis_url: str,
               aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Site:
    clock = RunningClock(START)
    sender = RecordingSender()
    booking_settings = BookingSettings(
        database_url=database_url, deployment="test", secrets=(SECRET,),
        admin_token=BOOKING_ADMIN_TOKEN, identity_key="test-identity-key",
        outbox_worker=False, sweep_seconds=3600, hold_seconds=600,
        code_validity_seconds=600, code_resend_seconds=60, cookie_secure=False)
    booking = create_booking_app(booking_settings, clock=clock, sender=sender,
                                 registry=CollectorRegistry())
    backend_server = await aiohttp_server(booking)
    booking_admin = await aiohttp_server(create_booking_admin_app(public_app=booking))
    async with aiohttp.ClientSession() as session, session.post(
            booking_admin.make_url("/admin/catalogue/demo"),
            headers={"Authorization": f"Bearer {BOOKING_ADMIN_TOKEN}"}) as resp:
        assert resp.status == 200, await resp.text()
    backend = booking[booking_keys.backend_key]
    catalogue = await backend.service.catalogue()
    pairs = [pair_slots(CENTRE, i) for i in range(PAIRS)]
    await backend.inventory.release_slots(
        catalogue.centres[CENTRE], [(slot, 1) for pair in pairs for slot in pair])
    settings = gate_settings(redis_url, str(backend_server.make_url("/")),
                             initial_rate_per_minute=6000, initial_mode="paused",
                             bypass_paths=DEMO_BYPASS_PATHS,
                             poll_min_s=5.0, poll_max_s=10.0)
    gate_app = create_gate_app(settings, clock=clock, registry=CollectorRegistry())
    gate = await aiohttp_server(gate_app)
    gate_admin = await aiohttp_server(create_gate_admin_app(gate_app))

    async def open_room() -> None:
        async with aiohttp.ClientSession() as session, session.patch(
                gate_admin.make_url("/admin/rooms/default"), json={"mode": "queue"},
                headers={"Authorization": f"Bearer {GATE_ADMIN_TOKEN}"}) as resp:
            assert resp.status == 200, await resp.text()

    return Site(str(gate.make_url("")).rstrip("/"), sender, backend.outbox.run_once,
                open_room)


class Checked:
    """axe-core and the one-language check on each page shown; a screenshot when asked."""

    def __init__(self, lang: str, screenshots: bool, *, axe: bool) -> None:
        # axe-core runs in the page: with JavaScript off it cannot (the same pages are
        # checked by the runs with JavaScript).
        self.axe = axe_api.Axe() if axe else None
        self.lang = lang
        self.screenshots = screenshots
        self.pages: list[str] = []

    async def __call__(self, page: Any, name: str) -> None:
        if self.axe is not None:
            results = await self.axe.run(page)
            bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                   for v in results.response["violations"]
                   if v.get("impact") in ("serious", "critical")]
            assert bad == [], f"{name}: {bad}"
        assert foreign_texts(await page.content(), self.lang) == [], name
        self.pages.append(name)
        if self.screenshots:
            IMAGES.mkdir(parents=True, exist_ok=True)
            await page.screenshot(
                path=str(IMAGES / f"citizen-{self.lang}-{len(self.pages)}-{name}.png"),
                full_page=True)


async def stay(route: Any) -> None:
    await route.fulfill(status=204)


async def submit(page: Any, form: str) -> None:
    """Click the form's submit button and wait for the page it leads to."""
    async with page.expect_navigation(timeout=STEP_MS):
        await page.locator(f"{form} button[type=submit]").first.click()


@pytest.mark.parametrize(("lang", "javascript", "width"), [
    ("de", True, 412), ("de", False, 412), ("en", True, 412), ("en", False, 412),
    ("de", False, 1280), ("en", True, 1280),
])
async def test_the_way_through(browser: Any, site: Site, lang: str, javascript: bool,
                               width: int) -> None:
    check = Checked(lang, SCREENSHOTS and width == 412 and javascript, axe=javascript)
    context = await browser.new_context(
        locale="de-DE" if lang == "de" else "en-GB", java_script_enabled=javascript,
        viewport={"width": width, "height": 900}, accept_downloads=True,
        extra_http_headers={"Accept-Language": lang})
    page = await context.new_page()
    page.set_default_timeout(STEP_MS)
    origin = re.escape(site.gate_url)

    # The line: a ticket and the waiting page, then admitted to where the visitor was going.
    # The room opens paused (so the waiting page stays long enough to be checked).
    await page.goto(site.gate_url + "/")
    assert "/queue/wait" in page.url
    # Without JavaScript the page reloads itself every few seconds (a meta refresh); while
    # it is checked, that reload is answered 204 No Content, which leaves the page as it is.
    await page.route("**/queue/wait*", stay)
    await check(page, "waiting")
    await page.unroute("**/queue/wait*", stay)
    await site.open_room()
    # The page's next look at its status may be seconds away (with JavaScript on its
    # schedule, without it the refresh answered 204 above): look now. That a waiting page
    # follows changes by itself is tests/queue_gate/test_live_browser.py's subject.
    await page.reload()
    await page.wait_for_url(re.compile(origin + r"/(\?.*)?$"))
    await check(page, "start")

    await page.fill("#birth_date", OLD)
    await page.fill("#postcode", HOME_POSTCODE)
    await submit(page, 'form[action="/start"]')
    await check(page, "appointments")

    await submit(page, 'form[action="/hold"]')
    await check(page, "details")
    person = f"Erika {'JN'[javascript]}{width} {lang.upper()}-Muster"
    contact = f"0151 {int(javascript)}{width:04d}{ord(lang[0]):03d}"
    await page.fill("#name", person)
    await page.fill("#contact", contact)
    await submit(page, 'form[action="/details"]')
    await check(page, "verify")

    await site.deliver()
    address = contact_address(contact)
    await page.fill("#code", site.sender.last_code(address))
    await submit(page, 'form[action="/verify"]')
    booking_code = await page.locator(".code").first.inner_text()
    assert re.fullmatch(r"[A-Z0-9-]{6,}", booking_code.strip()), booking_code
    await check(page, "confirmation")

    # The confirmation stays: reloaded, it is still there (the queue session has ended).
    await page.reload()
    assert booking_code in await page.content()
    async with page.expect_download() as download_info:
        await page.locator('a[href$="calendar.ics"]').first.click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".ics")
    calendar = await asyncio.to_thread(Path(await download.path()).read_text, "utf-8")
    assert calendar.count("BEGIN:VEVENT") == 2

    # Managing the booking and cancelling it, without queueing again.
    await page.goto(site.gate_url + "/manage")
    assert "/queue/wait" not in page.url
    await check(page, "manage")
    await page.fill("#booking_code", booking_code.strip())
    await page.fill("#birth_date", OLD)
    await submit(page, 'form[action="/manage"]')
    await check(page, "manage-booking")
    if await page.locator('form[action="/manage/cancel-code"]').count():
        await submit(page, 'form[action="/manage/cancel-code"]')
        await site.deliver()
        await page.fill('form[action="/manage/cancel"] #code', site.sender.last_code(address))
    await submit(page, 'form[action="/manage/cancel"]')
    await check(page, "cancelled")
    assert booking_code in await page.content() or "/queue/wait" not in page.url
    await context.close()
