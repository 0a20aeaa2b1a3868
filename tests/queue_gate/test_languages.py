"""Every word a visitor or an app reads at the gate comes from the catalogue, in their
language: pages and JSON messages alike, chosen by `?lang=`, the shared `lang` cookie or
Accept-Language."""

from __future__ import annotations

import html
import json

import pytest

from queue_gate.line import Line
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, join
from vaccine_queue.contract import TICKET_COOKIE, Ticket
from vaccine_queue.i18n import LANG_COOKIE, translator

FORGED = "forged.token.value"
BROWSERS = {"de": "de-DE,de;q=0.9,en;q=0.5", "en": "en-GB,en;q=0.9,de;q=0.4"}
OTHER = {"de": "en", "en": "de"}


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_a_refused_ticket_is_explained_in_the_visitors_language(
    gate: Gate, lang: str,
) -> None:
    t, other = translator(lang), translator(OTHER[lang])
    gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: FORGED})
    page = await gate.client.get("/queue/wait", headers={
        "Accept-Language": BROWSERS[lang], "Accept": "text/html"})
    text = await page.text()
    assert page.status == 200
    assert page.headers["Content-Language"] == lang
    assert html.escape(t("err.ticket_invalid")) in text
    assert html.escape(other("err.ticket_invalid")) not in text
    assert TICKET_COOKIE in page.cookies  # and a new place in line

    gate.client.session.cookie_jar.clear()
    api = await gate.client.get("/queue/api/status", headers={
        "Authorization": f"Bearer {FORGED}", "Accept-Language": BROWSERS[lang]})
    body = await api.json()
    assert (api.status, body["error"], body["message"]) == (
        401, "ticket_invalid", t("err.ticket_invalid"))


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_a_finished_session_is_explained_in_the_visitors_language(
    gate: Gate, clock: FakeClock, lang: str,
) -> None:
    t = translator(lang)
    ticket = str((await join(gate))["ticket"])
    clock.advance(1)
    await gate.tick()
    admitted = await gate.client.get("/queue/api/status",
                                     headers={"Authorization": f"Bearer {ticket}"})
    assert (await admitted.json())["state"] == "admitted"
    clock.advance(15 * 60 + 1)  # the booking session is over
    gate.client.session.cookie_jar.clear()

    api = await gate.client.get("/queue/api/status", headers={
        "Authorization": f"Bearer {ticket}", "Accept-Language": BROWSERS[lang]})
    body = await api.json()
    assert (api.status, body["error"], body["message"]) == (
        401, "session_ended", t("err.session_ended"))

    # The waiting page gives a new place at once, and says so.
    gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: ticket})
    page = await gate.client.get("/queue/wait", headers={"Accept-Language": BROWSERS[lang]})
    assert page.status == 200
    assert html.escape(t("gate.session_ended")) in await page.text()


async def test_the_gate_remembers_a_language_choice_in_the_shared_cookie(gate: Gate) -> None:
    assert LANG_COOKIE == "lang"  # the cookie the booking pages read too
    chosen = await gate.client.get("/queue/wait?lang=en",
                                   headers={"Accept-Language": BROWSERS["de"]})
    assert chosen.cookies[LANG_COOKIE].value == "en"
    assert chosen.cookies[LANG_COOKIE]["path"] == "/"
    assert "qg_lang" not in chosen.cookies
    assert 'lang="en"' in await chosen.text()

    # Later requests follow the cookie rather than the browser's German, API included.
    again = await gate.client.get("/queue/wait", headers={"Accept-Language": BROWSERS["de"]})
    assert 'lang="en"' in await again.text()
    api = await gate.client.get("/queue/api/status", headers={
        "Authorization": f"Bearer {FORGED}", "Accept-Language": BROWSERS["de"]})
    assert json.loads(await api.text())["message"] == translator("en")("err.ticket_invalid")


async def test_api_refusals_speak_the_apps_language(make_gate: GateFactory) -> None:
    gate = await make_gate(join_limit=1)
    await join(gate)
    german = translator("de")
    limited = await gate.client.post("/queue/api/join", headers={"Accept-Language": "de"})
    body = await limited.json()
    minutes = max(int(limited.headers["Retry-After"]) // 60, 1)
    assert (limited.status, body["error"], body["message"]) == (
        429, "too_many_joins", german("err.too_many_joins", minutes=minutes))
    elsewhere = await gate.client.get("/book", headers={
        "Accept": "application/json", "Accept-Language": "de"})
    body = await elsewhere.json()
    assert (elsewhere.status, body["error"], body["message"]) == (
        401, "pass_required", german("err.pass_required"))


async def test_an_unexpected_failure_tells_the_visitor_their_place_is_kept(
    gate: Gate, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shared words for an internal error speak of a reservation; the gate's of a place."""

    async def broken(self: Line, ticket: Ticket, *, just_joined: bool = False) -> None:
        raise RuntimeError("a bug")

    ticket = (await join(gate))["ticket"]
    monkeypatch.setattr(Line, "standing", broken)
    api = await gate.client.get("/queue/api/status", headers={
        "Authorization": f"Bearer {ticket}", "Accept-Language": "de"})
    body = await api.json()
    assert (api.status, body["error"], body["message"]) == (
        500, "internal_error", translator("de")("gate.internal_error"))
    page = await gate.client.get("/queue/wait?lang=en", headers={"Accept": "text/html"})
    assert page.status == 500
    assert html.escape(translator("en")("gate.internal_error")) in await page.text()
