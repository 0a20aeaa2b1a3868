"""No German gate page holds an English catalogue text and no English one a German text:
the waiting page (fresh, after a refused ticket, after an ended session), the closed room,
the join limit, the error pages (the server's limits included) and the API's messages, each
in both languages; and the language chosen at the gate holds on the booking pages behind it."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from queue_gate.admin import create_admin_app
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth
from tests.queue_gate.test_proxy import admit
from tests.raw_http import raw_request
from tests.vaccine_queue.one_language import foreign_texts
from vaccine_queue.contract import TICKET_COOKIE
from vaccine_queue.i18n import LANG_COOKIE

Client = TestClient[web.Request, web.Application]


async def page(gate: Gate, path: str, lang: str, method: str = "GET") -> str:
    async with gate.client.request(method, path, headers={
            "Accept": "text/html", "Accept-Language": lang}) as resp:
        text = await resp.text()
        assert resp.headers.get("Content-Language", lang) == lang, path
    assert foreign_texts(text, lang) == [], (path, text)
    return text


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_every_gate_page_speaks_one_language(make_gate: GateFactory,
                                                   lang: str) -> None:
    gate = await make_gate(join_limit=2)
    await page(gate, "/queue/wait", lang)
    gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: "forged.token.value"})
    await page(gate, "/queue/wait", lang)  # refused ticket, a new place
    await page(gate, "/queue/nothing", lang)
    await page(gate, "/appointments?x=" + "a" * 9000, lang)
    for _ in range(3):  # up to the join limit
        gate.client.session.cookie_jar.clear()
        limited = await gate.client.post("/queue/api/join", headers={"Accept-Language": lang})
    assert limited.status == 429
    assert foreign_texts(await limited.text(), lang) == []
    gate.client.session.cookie_jar.clear()
    await page(gate, "/queue/wait", lang)  # the limit's page
    for path in ("/queue/api/status", "/queue/api/nothing"):
        async with gate.client.get(path, headers={"Accept-Language": lang,
                                                  "Authorization": "Bearer x"}) as resp:
            assert resp.status >= 400
            assert foreign_texts(await resp.text(), lang) == []
    response = await raw_request(gate.client.port, "GET", "/queue/wait?x=" + "a" * 20_000,
                                 [("Accept", b"text/html"), ("Accept-Language", lang.encode())])
    assert response.status == 414 and foreign_texts(response.body.decode(), lang) == []


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_a_closed_room_and_an_ended_session(make_gate: GateFactory, clock: FakeClock,
                                                  lang: str, aiohttp_client: object) -> None:
    gate = await make_gate()
    await admit(gate, clock)
    clock.advance(15 * 60 + 1)
    await gate.tick()
    text = await page(gate, "/queue/wait", lang)  # the ended session, a new place
    admin: Client = await aiohttp_client(create_admin_app(gate.app))  # type: ignore[operator]
    async with admin.patch("/admin/rooms/default", json={"mode": "closed"},
                           headers=auth()) as resp:
        assert resp.status == 200, await resp.text()
    await gate.tick()
    gate.client.session.cookie_jar.clear()
    text = await page(gate, "/queue/wait", lang)
    assert text


async def test_the_language_chosen_at_the_gate_reaches_the_booking_pages(gate: Gate,
                                                                         clock: FakeClock
                                                                         ) -> None:
    """One `lang` cookie (path /) for both services: chosen on the waiting page, it goes
    with every proxied request, and the backend's choice comes back the same way."""
    async with gate.client.get("/queue/wait?lang=en",
                               headers={"Accept-Language": "de"}) as resp:
        assert resp.cookies[LANG_COOKIE].value == "en"
    await admit(gate, clock)
    async with gate.client.get("/appointments", headers={"Accept-Language": "de"}) as resp:
        body = await resp.json()  # the stand-in backend tells what it received
    assert f"{LANG_COOKIE}=en" in body["headers"]["Cookie"]
    # A choice the backend remembers (its Set-Cookie) reaches the browser through the gate
    # and is honoured by the gate's own pages.
    gate.client.session.cookie_jar.clear()  # a new visitor, who chose German in the backend
    gate.client.session.cookie_jar.update_cookies({LANG_COOKIE: "de"})
    async with gate.client.get("/queue/wait", headers={"Accept-Language": "en"}) as resp:
        assert resp.headers["Content-Language"] == "de"
        assert foreign_texts(await resp.text(), "de") == []
