"""Choosing an appointment by day and time of day: the page offers the next days with free
pairs and the times of day as links (no JavaScript), a few pairs per centre (nearest first)
with "more" and the next day; the API takes the same `day` and `time_of_day`; anything
unusable is a readable 422 (page and JSON). The queries run on the free slots' index."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest

from booking_backend.days import DayChoice, parse_choice
from booking_backend.inventory import OFFER_DAYS_SQL, OFFERS_SQL, Slot
from tests.booking_backend.conftest import (
    BERLIN,
    CENTRE,
    FIRST_DAY,
    HOME_POSTCODE,
    OLD,
    OTHER_CENTRE,
    Env,
    local,
)
from tests.booking_backend.test_pages import Browser
from vaccine_queue.pages import Problem

TUESDAY = FIRST_DAY + dt.timedelta(days=1)
PERSON = {"birth_date": OLD, "postcode": HOME_POSTCODE}


async def add_pairs_at(env: Env, centre: str, day: dt.date,
                       times: list[tuple[int, int]]) -> list[tuple[Slot, Slot]]:
    """Pairs whose first dose is on `day` at each (hour, minute), the second 21 days later."""
    catalogue = await env.backend.service.catalogue()
    second = day + dt.timedelta(days=21)
    pairs = [(Slot(local(day, h, m), centre), Slot(local(second, h, m), centre))
             for h, m in times]
    await env.backend.inventory.release_slots(
        catalogue.centres[centre], [(slot, 1) for pair in pairs for slot in pair], share=0.0)
    return pairs


async def a_week(env: Env) -> None:
    """Monday: five mornings, an afternoon and an evening at the home centre, one morning at
    a neighbouring one; Tuesday: one afternoon at home."""
    await add_pairs_at(env, CENTRE, FIRST_DAY,
                       [(8, 0), (8, 10), (8, 20), (8, 30), (8, 40), (14, 0), (18, 30)])
    await add_pairs_at(env, OTHER_CENTRE, FIRST_DAY, [(9, 0)])
    await add_pairs_at(env, CENTRE, TUESDAY, [(13, 0)])


def firsts(page: str) -> list[str]:
    return re.findall(r'name="first_slot" value="([^"]+)"', page)


async def appointments(env: Env, query: str = "", lang: str = "de") -> tuple[Browser, int]:
    browser = Browser(env, lang)
    await browser.get("/")
    await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    status = await browser.get(f"/appointments{query}")
    return browser, status


def test_parsing_the_choice() -> None:
    assert parse_choice(None, None) == DayChoice(None, "all")
    assert parse_choice("2021-01-11", "evening") == DayChoice(FIRST_DAY, "evening")
    for day in ("11.01.2021", "2021-1-11", "2021-02-30", "x" * 40, "20210111", ""):
        with pytest.raises(Problem) as caught:
            parse_choice(day, None)
        assert (caught.value.code, caught.value.status, caught.value.field) == (
            "day_invalid", 422, "day")
    with pytest.raises(Problem) as caught:
        parse_choice(None, "night")
    assert (caught.value.code, caught.value.field) == ("time_of_day_invalid", "time_of_day")
    # A day in the deployment's zone, also when the clocks change (28 March 2021: 23 h).
    start, end = DayChoice(dt.date(2021, 3, 28)).window(BERLIN)  # type: ignore[misc]
    assert end - start + 1 == 23 * 3600


async def test_the_page_shows_the_first_day_a_few_pairs_per_centre_and_the_days(
        env: Env) -> None:
    await a_week(env)
    browser, status = await appointments(env)
    assert status == 200
    page = html.unescape(browser.page)
    assert "Freie Termine am Montag, 11.01.2021" in page
    # The days with free pairs, as links; today's choice marked.
    assert '<a href="/appointments?day=2021-01-11&time_of_day=all" aria-current="date">' in page
    assert '<a href="/appointments?day=2021-01-12&time_of_day=all">' in page
    assert '<a href="/appointments?day=2021-01-11&time_of_day=evening">' in page
    # Three pairs at the home centre (first, nearest), then the neighbour's; "more" for home.
    shown = firsts(page)
    assert len(shown) == 4
    assert [s.split("@")[0] for s in shown] == [CENTRE] * 3 + [OTHER_CENTRE]
    assert f"/appointments?day=2021-01-11&time_of_day=all&centre={CENTRE}#centre-{CENTRE}" in page
    assert "Weitere Termine in Impfzentrum Braunschweig" in page
    assert "Nächster Tag: Dienstag, 12.01.2021" in page


async def test_more_at_one_centre_and_another_day_and_time(env: Env) -> None:
    await a_week(env)
    browser, _ = await appointments(env, f"?day=2021-01-11&time_of_day=all&centre={CENTRE}")
    shown = firsts(browser.page)
    assert len(shown) == 7 and {s.split("@")[0] for s in shown} == {CENTRE}
    assert "Alle Impfzentren zeigen" in browser.page
    assert await browser.get("/appointments?day=2021-01-11&time_of_day=afternoon") == 200
    assert firsts(browser.page) == [Slot(local(FIRST_DAY, 14), CENTRE).id]
    assert await browser.get("/appointments?day=2021-01-11&time_of_day=evening") == 200
    assert firsts(browser.page) == [Slot(local(FIRST_DAY, 18, 30), CENTRE).id]
    assert await browser.get("/appointments?day=2021-01-12&time_of_day=morning") == 200
    assert firsts(browser.page) == []
    assert "zu dieser Tageszeit keine freien Termine" in browser.page
    assert await browser.get("/appointments?day=2021-01-12") == 200
    assert firsts(browser.page) == [Slot(local(TUESDAY, 13), CENTRE).id]


@pytest.mark.parametrize(("query", "lang", "words"), [
    ("?day=11.01.2021", "de", "Der Tag muss als JJJJ-MM-TT angegeben sein"),
    ("?day=2021-01-11&time_of_day=night", "en", "Please choose morning, afternoon or evening"),
    ("?day=2021-03-01", "en", "Appointments cannot be booked on that day"),
    ("?day=2021-01-11&centre=nowhere", "de", "Impfzentrum"),
])
async def test_an_unusable_choice_is_said_on_the_page(
        env: Env, query: str, lang: str, words: str) -> None:
    await a_week(env)
    browser, status = await appointments(env, query, lang)
    assert status == 422
    assert 'class="error"' in browser.page and words in html.unescape(browser.page)
    assert len(firsts(browser.page)) == 4  # the first day is shown instead


async def test_a_gone_pair_keeps_the_chosen_day(env: Env) -> None:
    await a_week(env)
    other = Browser(env, "de")
    await other.get("/")
    await other.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    pair = (Slot(local(TUESDAY, 13), CENTRE), Slot(local(TUESDAY + dt.timedelta(days=21), 13),
                                                   CENTRE))
    await env.api("POST", "/api/v1/holds", "someone-else", json={
        **PERSON, "first_slot": pair[0].id, "second_slot": pair[1].id})
    browser, _ = await appointments(env, "?day=2021-01-12")
    status = await browser.post("/hold", first_slot=pair[0].id, second_slot=pair[1].id,
                                day="2021-01-12", time_of_day="afternoon")
    assert status == 409
    assert "Dienstag, 12.01.2021" in browser.page and 'aria-current="true"' in browser.page


async def test_the_api_filters_by_day_and_time_of_day(env: Env) -> None:
    await a_week(env)
    status, body = await env.api("POST", "/api/v1/offers?day=2021-01-11&time_of_day=evening",
                                 json=PERSON)
    assert status == 200
    assert [o["first"]["slot"] for o in body["offers"]] == [
        Slot(local(FIRST_DAY, 18, 30), CENTRE).id]
    status, body = await env.api("POST", "/api/v1/offers?time_of_day=afternoon", json=PERSON)
    assert [o["first"]["start"][:16] for o in body["offers"]] == [
        "2021-01-11T14:00", "2021-01-12T13:00"]
    status, body = await env.api("POST", "/api/v1/offers?day=2021-01-12", json=PERSON)
    assert [o["first"]["slot"] for o in body["offers"]] == [Slot(local(TUESDAY, 13), CENTRE).id]


@pytest.mark.parametrize(("query", "lang", "code", "field", "words"), [
    ("?day=tomorrow", "en", "day_invalid", "day", "YYYY-MM-DD"),
    ("?day=2021-01-11&time_of_day=noon", "de", "time_of_day_invalid", "time_of_day",
     "Vormittag, Nachmittag oder Abend"),
    ("?day=2020-12-24", "en", "day_out_of_range", "day", "cannot be booked on that day"),
])
async def test_the_api_refuses_an_unusable_choice_readably(
        env: Env, query: str, lang: str, code: str, field: str, words: str) -> None:
    status, body = await env.api("POST", f"/api/v1/offers{query}", json=PERSON,
                                 headers={"Accept-Language": lang})
    assert status == 422
    assert (body["error"], body["field"]) == (code, field) and words in body["message"]


async def test_offer_days_and_offers_use_the_free_slots_index(env: Env) -> None:
    await a_week(env)
    catalogue = await env.backend.service.catalogue()
    days = await env.backend.inventory.offer_days(
        [catalogue.centres[CENTRE], catalogue.centres[OTHER_CENTRE]], 7)
    assert [d.day for d in days] == [FIRST_DAY, TUESDAY]
    # With sequential scans ruled out, both queries can run on `slots_open` (the partial
    # index of free slots): the filter adds no other access path.
    async with env.backend.db.connection() as conn:
        await conn.execute("SET enable_seqscan = off")
        for sql, args in ((OFFERS_SQL, ([CENTRE], 0, 2**40, 1, 2**31, 4, True,
                                        "Europe/Berlin", 0, 11)),
                          (OFFER_DAYS_SQL, ([CENTRE], 0, 2**40, 1, 2**31, "Europe/Berlin",
                                            7))):
            plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
            assert "slots_open" in plan, plan
        await conn.execute("RESET enable_seqscan")


async def test_the_api_names_the_days_to_choose_from(env: Env) -> None:
    await a_week(env)
    status, body = await env.api("POST", "/api/v1/offers?day=2021-01-12&time_of_day=evening",
                                 json=PERSON)
    assert status == 200
    assert body["offers"] == [] and body["days"] == ["2021-01-11", "2021-01-12"]
