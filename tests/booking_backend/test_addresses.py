"""A centre's street address and a map link (OpenStreetMap's search, no script) wherever a
centre is shown: the offers, the held pair, the confirmation, managing a booking, the
calendar file and the API."""

from __future__ import annotations

import html
import json

import pytest

from booking_backend.catalogue import CatalogueError, demo_catalogue_json, parse_catalogue
from tests.booking_backend.conftest import CENTRE, HOME_POSTCODE, OLD, Env
from tests.booking_backend.test_confirmation_stays import booked
from tests.booking_backend.test_pages import Browser

ADDRESS = "Hansestraße 16, 38100 Braunschweig"
MAP_URL = ("https://www.openstreetmap.org/search?query="
           "Hansestra%C3%9Fe+16%2C+38100+Braunschweig")


def test_every_demo_centre_has_a_street_and_a_map_link() -> None:
    catalogue = parse_catalogue(json.loads(demo_catalogue_json()))
    assert all(centre.street for centre in catalogue.centres.values())
    centre = catalogue.centres[CENTRE]
    assert centre.address == ADDRESS and centre.map_url == MAP_URL


def test_a_catalogue_without_streets_still_loads() -> None:
    raw = json.loads(demo_catalogue_json())
    del raw["centres"][0]["street"]
    centre = parse_catalogue(raw).centres[raw["centres"][0]["id"]]
    assert centre.street == "" and centre.address == f"{centre.postcode} {centre.town}"
    raw["centres"][0]["street"] = 7
    with pytest.raises(CatalogueError, match=r"centres\[0\]\.street"):
        parse_catalogue(raw)


def shows_the_address(page: str) -> bool:
    text = html.unescape(page)
    return ADDRESS in text and f'href="{MAP_URL}"' in text and "OpenStreetMap" in text


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_offers_and_the_held_pair_show_the_address(env: Env, lang: str) -> None:
    pairs = await env.add_pairs(1)
    browser = Browser(env, lang)
    await browser.get("/")
    await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    assert shows_the_address(browser.page)
    await browser.post("/hold", first_slot=pairs[0][0].id, second_slot=pairs[0][1].id)
    assert shows_the_address(browser.page)


async def test_confirmation_manage_calendar_and_api_show_the_address(env: Env) -> None:
    browser, code = await booked(env)
    assert await browser.get("/confirmation") == 200
    assert shows_the_address(browser.page)
    async with env.client.get("/confirmation/calendar.ics") as resp:
        calendar = (await resp.text()).replace("\r\n ", "")
    assert "LOCATION:Impfzentrum Braunschweig\\, Hansestraße 16\\, 38100 Braunschweig" in (
        calendar)
    env.client.session.cookie_jar.clear()
    browser.headers = {"Accept-Language": "de"}
    assert await browser.get("/manage") == 200
    assert await browser.post("/manage", booking_code=code, birth_date=OLD) == 200
    assert shows_the_address(browser.page)
    status, body = await env.api("POST", "/api/v1/bookings/lookup", "app",
                                 json={"booking_code": code, "birth_date": OLD})
    assert status == 200
    assert body["centre"]["address"] == ADDRESS and body["centre"]["map_url"] == MAP_URL
