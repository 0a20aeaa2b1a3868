"""No German page holds an English catalogue text, and no English page a German one: the
booking pages from start to cancellation, the error pages (the server's limits included),
the demo inbox and API messages, each rendered in both languages."""

from __future__ import annotations

import re

import pytest

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, YOUNG, Env, MakeEnv
from tests.booking_backend.test_pages import Browser
from tests.raw_http import raw_request
from tests.vaccine_queue.one_language import foreign_texts
from vaccine_queue.i18n import LANG_COOKIE


class Checked(Browser):
    """A browser that checks every page it gets for the other language."""

    seen = 0

    def check(self, lang: str) -> None:
        assert f'<html lang="{lang}">' in self.page or self.page.startswith("{"), self.page[:200]
        assert foreign_texts(self.page, lang) == [], self.page
        self.seen += 1

    async def get(self, path: str) -> int:
        status = await super().get(path)
        self.check(self.headers["Accept-Language"])
        return status

    async def post(self, path: str, **form: str) -> int:
        status = await super().post(path, **form)
        self.check(self.headers["Accept-Language"])
        return status


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_every_booking_page_speaks_one_language(make_env: MakeEnv, lang: str) -> None:
    env: Env = await make_env(demo=True, demo_days=1)
    pairs = await env.add_pairs(2)
    b = Checked(env, lang)
    await b.get("/")
    await b.post("/start", birth_date="", postcode="1")  # errors on the form
    await b.post("/start", birth_date=YOUNG, postcode=HOME_POSTCODE)  # not eligible
    await b.post("/start", birth_date=OLD, postcode="99999")  # unknown postcode (region)
    assert "Niedersachsen" in b.page and "demo data" not in b.page
    await b.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    await b.post("/hold", first_slot=pairs[0][0].id, second_slot=pairs[0][1].id)
    await b.post("/details", name="Erika Muster", contact="a@")
    await b.post("/details", name="Erika Muster", contact="0151 2345678")
    await env.deliver()
    await b.get("/verify")
    await b.post("/verify", code="000000")
    await b.post("/verify", code=env.sender.last_code())
    code = re.search(r'class="code">([A-Z0-9-]+)<', b.page)
    assert code
    await b.get("/confirmation")
    await b.get("/demo/inbox")
    await b.get("/manage")
    await b.post("/manage", booking_code="XXXX-XXXX", birth_date=OLD)
    await b.post("/manage", booking_code=code.group(1), birth_date=OLD)
    await b.post("/manage/cancel-code")
    await env.deliver()
    await b.post("/manage/cancel", code="000000")
    await b.post("/manage/cancel", code=env.sender.last_code())
    await b.get("/no-such-page")
    # The waiting list.
    b2 = Checked(env, lang)
    b2.headers = {**env.headers("other"), "Accept-Language": lang}
    await b2.get("/")
    await b2.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    await b2.post("/waitlist", name="Wilma Wait", contact="+4915155555555", centre="")
    assert b.seen + b2.seen == 23
    # The check itself finds the other language where it is.
    assert foreign_texts(b2.page, "en" if lang == "de" else "de")
    # The server's own limits and a refused pass.
    for path, extra in (("/?x=" + "a" * 20_000, []), ("/", [("X-Pad", b"a" * 20_000)]),
                        ("/appointments", [])):
        response = await raw_request(env.client.port, "GET", path, [
            ("Accept", b"text/html"), ("Cookie", f"{LANG_COOKIE}={lang}".encode()), *extra])
        assert response.status in (414, 431, 403)
        assert foreign_texts(response.body.decode(), lang) == []


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_api_messages_speak_one_language(env: Env, lang: str) -> None:
    for method, path, body in (
            ("POST", "/api/v1/eligibility", {"birth_date": "x", "postcode": "1"}),
            ("POST", "/api/v1/eligibility", {"birth_date": OLD, "postcode": "99999"}),
            ("POST", "/api/v1/holds", {"birth_date": OLD, "postcode": HOME_POSTCODE}),
            ("GET", "/api/v1/bookings/XXXX-XXXX", None),
            ("GET", "/api/v1/nothing", None)):
        status, answer = await env.api(method, path, json=body,
                                       headers={"Accept-Language": lang})
        assert status >= 400 and answer["message"], (path, answer)
        assert foreign_texts(answer["message"], lang) == [], answer
