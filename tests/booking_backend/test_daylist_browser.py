"""The printable day list in a real Chromium (Debian's, driven by playwright; no browser is
ever downloaded): signed in through the form, at A4 print width (794 CSS px at 96 dpi) with
print media every line is there, in time order, readable and not cut; the buttons are only
on screen; the PDF prints.

`DAYLIST_SCREENSHOT=1` writes the A4 print view to docs/img/daylist-a4.png and the desk's
screen to docs/img/daylist-desk.png (committed, shown in docs/booking.md).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from booking_backend.inventory import Slot
from tests.booking_backend.conftest import (
    ADMIN_TOKEN,
    CENTRE,
    FIRST_DAY,
    SECOND_DAY,
    Env,
    MakeEnv,
    local,
)
from tests.browser import needs_chromium

playwright_api = pytest.importorskip("playwright.async_api")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "daylist-a4.png"
SCREEN_SHOT = ROOT / "docs" / "img" / "daylist-desk.png"  # the desk's screen
A4_WIDTH_PX = 794  # 210 mm at 96 CSS px per inch
A4_HEIGHT_PX = 1123
PRINTABLE_WIDTH_PX = 703  # inside the print style's 12 mm page margins
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}



pytestmark = needs_chromium

# Who comes on SECOND_DAY: second doses of people first vaccinated on FIRST_DAY (one missed
# it), and first doses booked for that day.
SECOND_DOSE_PEOPLE = ("Hannelore Schäfer-Wilhelmsen", "Karl-Heinz Müller", "Gisela Brandt",
                      "Walter Ostermann")
FIRST_DOSE_PEOPLE = ("Ilse Meyer", "Friedrich-Wilhelm von Hohenstein-Ebersberg",
                     "Renate Koch", "Günther Lange", "Ursula Beck", "Horst Neumann")


async def fill_the_day(env: Env) -> None:
    catalogue = await env.backend.service.catalogue()
    centre = catalogue.centres[CENTRE]
    pairs: list[tuple[Slot, Slot]] = []
    for i in range(len(SECOND_DOSE_PEOPLE)):  # first on FIRST_DAY, second at 8:00, 8:15, ...
        pairs.append((Slot(local(FIRST_DAY, 8) + 900 * i, CENTRE),
                      Slot(local(SECOND_DAY, 8) + 900 * i, CENTRE)))
    for i in range(len(FIRST_DOSE_PEOPLE)):  # first on SECOND_DAY at 8:05, 8:20, ...
        pairs.append((Slot(local(SECOND_DAY, 8, 5) + 900 * i, CENTRE),
                      Slot(local(SECOND_DAY + dt.timedelta(days=21), 8, 5) + 900 * i,
                           CENTRE)))
    await env.backend.inventory.release_slots(
        centre, [(slot, 1) for pair in pairs for slot in pair], share=0.0)
    codes = []
    for i, (pair, name) in enumerate(zip(pairs, SECOND_DOSE_PEOPLE + FIRST_DOSE_PEOPLE,
                                         strict=True)):
        booking = await env.book(pair, f"b{i}", name=name, contact=f"+4915120000{i:03d}",
                                 birth=f"{1931 + i}-0{1 + i % 9}-1{i % 10}")
        codes.append(booking["booking_code"])
    env.clock.now = local(FIRST_DAY, 12)
    for i, code in enumerate(codes[:len(SECOND_DOSE_PEOPLE)]):
        await mark(env, code, "first", "no_show" if i == 1 else "attended")
    env.clock.now = local(SECOND_DAY, 8, 20)
    await mark(env, codes[0], "second", "attended")
    await mark(env, codes[len(SECOND_DOSE_PEOPLE)], "first", "attended")
    await mark(env, codes[len(SECOND_DOSE_PEOPLE) + 1], "first", "no_show")


async def mark(env: Env, code: str, dose: str, status: str) -> None:
    async with env.admin.post(f"/admin/bookings/{code}/attendance", headers=AUTH,
                              json={"dose": dose, "status": status}) as resp:
        assert resp.status == 200, await resp.text()


# What the test reads from the page: every line's box, font size and overflow.
MEASURE = """() => {
  const rows = [...document.querySelectorAll('#daylist tbody tr')];
  return {
    scrollWidth: document.documentElement.scrollWidth,
    rows: rows.map(row => {
      const box = row.getBoundingClientRect();
      const cells = [...row.cells];
      return {
        time: row.querySelector('.time').innerText.trim(),
        name: row.querySelector('.name').innerText.trim(),
        left: box.left, right: box.right, height: box.height,
        visible: row.checkVisibility(),
        fontSize: Math.min(...cells.map(c => parseFloat(getComputedStyle(c).fontSize))),
        cut: cells.filter(c => c.scrollWidth > c.clientWidth + 1).length,
      };
    }),
    buttons: [...document.querySelectorAll('button')].filter(b => b.checkVisibility()).length,
  };
}"""


async def test_the_printable_day_list_fits_a4(make_env: MakeEnv, browser: Any) -> None:
    env = await make_env()
    await fill_the_day(env)
    # A German desk's browser (the page follows Accept-Language, as every page here).
    page = await browser.new_page(viewport={"width": A4_WIDTH_PX, "height": A4_HEIGHT_PX},
                                  locale="de-DE")
    path = f"/centre/{CENTRE}/{SECOND_DAY.isoformat()}"
    # The desk's way in: the list's address sends the browser to sign in, and back.
    await page.goto(str(env.admin.make_url(path)))
    assert "/centre/login" in page.url
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{path}")

    on_screen = await page.evaluate(MEASURE)
    assert on_screen["buttons"] > 10  # the check-in buttons, on screen only
    assert min(row["fontSize"] for row in on_screen["rows"]) >= 18

    if os.environ.get("DAYLIST_SCREENSHOT"):
        await page.set_viewport_size({"width": 1280, "height": 900})
        await page.screenshot(path=str(SCREEN_SHOT))
        await page.set_viewport_size({"width": A4_WIDTH_PX, "height": A4_HEIGHT_PX})

    await page.emulate_media(media="print")
    printed = await page.evaluate(MEASURE)
    rows = printed["rows"]
    assert printed["buttons"] == 0
    assert printed["scrollWidth"] <= A4_WIDTH_PX
    assert len(rows) == len(SECOND_DOSE_PEOPLE) + len(FIRST_DOSE_PEOPLE)
    for row in rows:
        assert row["visible"] and row["height"] > 0, row
        assert row["left"] >= 0 and row["right"] <= A4_WIDTH_PX, row
        assert row["fontSize"] >= 14, row
        assert row["cut"] == 0, row
    times = [row["time"] for row in rows]
    assert times == sorted(times) and times[0] == "08:00"
    names = [row["name"].splitlines()[0] for row in rows]
    assert set(names) == set(SECOND_DOSE_PEOPLE + FIRST_DOSE_PEOPLE)
    # The second dose of the person who missed the first is flagged, on paper too.
    flagged = [row["name"] for row in rows if "1. Impfung versäumt" in row["name"]]
    assert flagged and flagged[0].startswith("Karl-Heinz Müller")
    header = await page.inner_text(".sheet-head")
    assert "Montag, 01.02.2021" in header and "Stand: Montag, 01.02.2021, 08:20 Uhr" in header
    assert "10 Termine: 2 erschienen, 1 nicht erschienen, 7 offen" in header

    if os.environ.get("DAYLIST_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
    # On paper the page margins take their share: still nothing cut or overflowing.
    await page.set_viewport_size({"width": PRINTABLE_WIDTH_PX, "height": A4_HEIGHT_PX})
    narrow = await page.evaluate(MEASURE)
    assert narrow["scrollWidth"] <= PRINTABLE_WIDTH_PX
    assert all(row["cut"] == 0 and row["right"] <= PRINTABLE_WIDTH_PX for row in narrow["rows"])
    pdf = await page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    await page.close()
