"""The confirmation stays after the booking ended the queue session: reloading it, its
calendar file and managing or cancelling the booking need no pass (only this browser's
session, or the booking code and birth date); the demo shows its messages in an inbox."""

from __future__ import annotations

import re

from booking_backend.ics import fold
from tests.booking_backend.conftest import OLD, Env, MakeEnv
from tests.booking_backend.test_pages import Browser, book_through_the_pages
from vaccine_queue.contract import PASS_COOKIE


def without_pass(env: Env) -> None:
    """As the gate leaves the browser after the booking: no pass cookie."""
    env.client.session.cookie_jar.clear(lambda cookie: cookie.key == PASS_COOKIE)


async def booked(env: Env, lang: str = "de") -> tuple[Browser, str]:
    browser = Browser(env, lang, cookie=True)
    await book_through_the_pages(env, browser)
    match = re.search(r'class="code">([A-Z0-9-]+)<', browser.page)
    assert match
    without_pass(env)
    return browser, match.group(1)


async def test_reloading_the_confirmation_needs_no_pass(env: Env) -> None:
    browser, code = await booked(env)
    assert await browser.get("/confirmation") == 200
    assert code in browser.page and "Ihre Termine sind gebucht" in browser.page
    assert 'href="/confirmation/calendar.ics"' in browser.page
    async with env.client.get("/static/booking.css") as resp:
        assert "@media print" in await resp.text()
    # Another browser (no session) is sent to manage by code, not to the queue.
    env.client.session.cookie_jar.clear()
    async with env.client.get("/confirmation", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (303, "/manage")


async def test_the_calendar_file(env: Env) -> None:
    _, code = await booked(env, "en")
    async with env.client.get("/confirmation/calendar.ics",
                              headers={"Accept-Language": "en"}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/calendar"
        assert resp.headers["Content-Disposition"] == (
            f'attachment; filename="vaccination-appointments-{code}.ics"')
        raw = await resp.read()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    text = raw.decode().replace("\r\n ", "")  # unfold
    lines = text.split("\r\n")
    assert lines[0] == "BEGIN:VCALENDAR" and "VERSION:2.0" in lines
    assert lines.count("BEGIN:VEVENT") == 2 == lines.count("END:VEVENT")
    # Monday 11 January 2021, 08:00 in Berlin is 07:00 UTC; the second dose 21 days later.
    assert "DTSTART:20210111T070000Z" in lines and "DTSTART:20210201T070000Z" in lines
    assert f"UID:{code}-first@test" in lines and f"UID:{code}-second@test" in lines
    assert "SUMMARY:Vaccination appointment (first dose)" in lines
    location = next(line for line in lines if line.startswith("LOCATION:"))
    assert "Braunschweig" in location and "\\," in location
    assert all(len(line.encode()) <= 75 for line in raw.decode().split("\r\n"))
    # In German when asked so.
    async with env.client.get("/confirmation/calendar.ics?lang=de") as resp:
        assert "Impftermin (erste Impfung)" in (await resp.text()).replace("\r\n ", "")
    # Only for the booking this browser made or opened.
    env.client.session.cookie_jar.clear()
    for path in ("/confirmation/calendar.ics", "/manage/calendar.ics"):
        async with env.client.get(path) as resp:
            assert resp.status == 404


def test_long_lines_fold_between_characters() -> None:
    line = "DESCRIPTION:" + "ä" * 60
    folded = fold(line)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == line


async def test_manage_and_cancel_after_the_session_ended(env: Env) -> None:
    browser, code = await booked(env)
    env.client.session.cookie_jar.clear()  # even another browser, no pass at all
    browser.headers = {"Accept-Language": "de"}
    assert await browser.get("/manage") == 200
    assert await browser.post("/manage", booking_code=code, birth_date=OLD) == 200
    assert code in browser.page and 'href="/manage/calendar.ics"' in browser.page
    async with env.client.get("/manage/calendar.ics") as resp:
        assert resp.status == 200
        assert f"UID:{code}-first@test" in await resp.text()
    assert await browser.post("/manage/cancel-code") == 200
    await env.deliver()
    assert await browser.post("/manage/cancel", code=env.sender.last_code()) == 200
    assert (await env.backend.service.booking(code)).status == "cancelled"  # type: ignore[union-attr]


async def test_pages_behind_the_pass_still_need_it(env: Env) -> None:
    for path in ("/", "/appointments", "/details", "/verify"):
        async with env.client.get(path, allow_redirects=False) as resp:
            assert resp.status == 403, path


async def test_the_demo_inbox(make_env: MakeEnv) -> None:
    env = await make_env(demo=True, demo_days=1, require_pass=False)
    async with env.client.get("/", headers={"Accept-Language": "de"}) as resp:
        page = await resp.text()
    assert 'href="/demo/inbox"' in page and "Demo-Postfach" in page
    async with env.client.get("/demo/inbox") as resp:
        assert resp.status == 200
        assert "Noch keine Nachrichten" in await resp.text()
    browser = Browser(env, "en")
    browser.headers = {"Accept-Language": "en"}
    pairs = await env.add_pairs(1)
    await browser.get("/")
    await browser.post("/start", birth_date=OLD, postcode="38100")
    await browser.post("/hold", first_slot=pairs[0][0].id, second_slot=pairs[0][1].id)
    await browser.post("/details", name="Erika Muster", contact="0151 2345678")
    await env.deliver()
    code = env.sender.last_code()
    assert await browser.get("/demo/inbox") == 200
    assert code in browser.page and "+49151****678" in browser.page
    assert "Demo inbox" in browser.page


async def test_no_inbox_outside_the_demo(env: Env) -> None:
    async with env.client.get("/demo/inbox", headers={"Accept": "text/html"}) as resp:
        assert resp.status == 404
        # No demo banner nor inbox link (the site's name is the operator's setting, whose
        # default says "Demo" until SITE_SERVICE_NAME is set).
        page = await resp.text()
        assert 'class="demo' not in page and 'href="/demo/inbox"' not in page
