"""The citizen's pages from start to printable confirmation, in German and English, without
JavaScript: plain forms, redirects and cookies."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, YOUNG, Env
from vaccine_queue.contract import PASS_COOKIE, QUEUE_WAIT_PATH


class Browser:
    """Follows forms like a browser without JavaScript. The pass travels in its header, or
    (`cookie=True`) in the cookie jar, as the gate leaves it in a browser."""

    def __init__(self, env: Env, lang: str = "de", *, cookie: bool = False) -> None:
        self.env = env
        self.headers = {"Accept-Language": lang}
        if cookie:
            env.client.session.cookie_jar.update_cookies({PASS_COOKIE: env.pass_token("browser")})
        else:
            self.headers.update(env.headers("browser"))
        self.page = ""
        self.token = ""

    async def get(self, path: str) -> int:
        async with self.env.client.get(path, headers=self.headers) as resp:
            self.page = await resp.text()
            return resp.status

    def csrf(self) -> str:
        """The page's token, or the last one seen (as a re-submitted old form carries)."""
        match = re.search(r'name="csrf_token" value="([^"]+)"', self.page)
        if match:
            self.token = match.group(1)
        return self.token

    async def post(self, path: str, **form: str) -> int:
        data = {"csrf_token": self.csrf(), **form}
        async with self.env.client.post(path, data=data, headers=self.headers) as resp:
            self.page = await resp.text()
            # The headers of the POST's own answer (a redirect's, when it was one).
            self.last_headers = resp.history[0].headers if resp.history else resp.headers
            return resp.status


async def test_booking_through_the_pages(env: Env) -> None:
    pairs = await env.add_pairs(2)
    browser = Browser(env)
    assert await browser.get("/") == 200
    assert "Jetzt können buchen: Menschen ab 80 Jahren." in browser.page
    assert await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE) == 200
    assert "Freie Termine" in browser.page and "Montag, 11.01.2021, 08:00 Uhr" in browser.page
    assert f'value="{pairs[0][0].id}"' in browser.page

    status = await browser.post("/hold", first_slot=pairs[0][0].id, second_slot=pairs[0][1].id)
    assert status == 200
    assert "Ihre Termine sind reserviert" in browser.page
    assert "Reserviert bis 08:10 Uhr." in browser.page  # stated without JavaScript
    assert 'data-expires="' in browser.page and "/static/countdown.js" in browser.page

    assert await browser.post("/details", name="Erika Muster", contact="a@") == 400
    assert "Bitte prüfen Sie die E-Mail-Adresse." in browser.page
    assert 'value="a@"' in browser.page
    assert await browser.post("/details", name="Erika Muster", contact="0151 2345678") == 200
    assert "Code eingeben" in browser.page and "+49151****678" in browser.page
    assert "Der Code ist unterwegs" in browser.page
    await env.deliver()
    assert await browser.get("/verify") == 200
    assert "Der Code ist angekommen" in browser.page

    assert await browser.post("/verify", code="000000") in (422,)
    assert "Der Code stimmt nicht. Sie haben noch 4 Versuche." in browser.page
    code = env.sender.last_code()
    assert await browser.post("/verify", code=code) == 200
    assert browser.last_headers["X-Queue-End-Session"] == "1"
    assert "Ihre Termine sind gebucht" in browser.page
    booking_code = re.search(r'class="code">([A-Z0-9-]+)<', browser.page)
    assert booking_code
    # A double click (re-submitting the same form) shows the same booking.
    assert await browser.post("/verify", code=code) == 200
    assert booking_code.group(1) in browser.page
    assert (await env.backend.counts())["bookings"] == 1
    assert await browser.get("/confirmation") == 200
    assert booking_code.group(1) in browser.page


class Links(HTMLParser):
    """Every address a page makes the browser fetch or offers to follow."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            # A fragment (the skip link) stays on the page itself.
            if name in ("href", "src", "action") and value and not value.startswith("#"):
                self.found.append(value)


async def book_through_the_pages(env: Env, browser: Browser) -> None:
    pairs = await env.add_pairs(1)
    await browser.get("/")
    await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    await browser.post("/hold", first_slot=pairs[0][0].id, second_slot=pairs[0][1].id)
    await browser.post("/details", name="Erika Muster", contact="0151 2345678")
    await env.deliver()
    assert await browser.post("/verify", code=env.sender.last_code()) == 200
    assert browser.last_headers["X-Queue-End-Session"] == "1"


async def test_the_confirmation_prints_itself_and_leads_nowhere_near_the_queue(
        env: Env) -> None:
    """The booking ends the queue session: the gate ends the pass and deletes its cookie.
    Nothing on the confirmation may lead back to the queue, neither with the cookies the
    browser holds nor once the gate has taken the pass away."""
    browser = Browser(env, cookie=True)
    await book_through_the_pages(env, browser)
    confirmation = browser.page
    assert "Ihre Termine sind gebucht" in confirmation
    # Printing: a button the script shows (from the cache: the code page loaded it) ...
    assert re.search(r'<button type="button" id="print" hidden>Seite drucken</button>',
                     confirmation)
    assert '<script src="/static/countdown.js" defer></script>' in confirmation
    assert "<script>" not in confirmation and " on" + "click" not in confirmation
    # ... and without JavaScript, the words for the browser's own print function.
    assert "Nutzen Sie die Druck-Funktion Ihres Browsers" in confirmation
    async with env.client.get("/static/countdown.js") as resp:
        assert "window.print()" in await resp.text()

    links = Links(confirmation).found
    # Reload, the calendar file and managing need no pass; the start page would.
    assert "/static/booking.css" in links and "/confirmation" in links and "/" not in links
    jar = env.client.session.cookie_jar
    for pass_still_there in (True, False):
        if not pass_still_there:
            jar.clear(lambda cookie: cookie.key == PASS_COOKIE)  # as the gate does
        for link in links:
            if link.startswith("https://"):
                continue  # off the site (the centre on OpenStreetMap)
            async with env.client.get(link, headers=browser.headers,
                                      allow_redirects=False) as resp:
                location = resp.headers.get("Location", "")
                assert resp.status != 403, (link, pass_still_there)
                assert not location.startswith(QUEUE_WAIT_PATH), (link, pass_still_there)
                assert resp.status == 200, (link, resp.status)


async def test_the_confirmation_in_english(env: Env) -> None:
    browser = Browser(env, "en")
    await book_through_the_pages(env, browser)
    assert "Your appointments are booked" in browser.page
    assert ">Print this page</button>" in browser.page
    assert "use the print function of your browser" in browser.page
    assert "Monday, 11 January 2021, 08:00" in browser.page


async def test_gone_pair_is_said_at_once(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    await env.api("POST", "/api/v1/holds", "someone-else", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
        "second_slot": second.id})
    browser = Browser(env, "en")
    await browser.get("/")
    await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    assert "There are no free appointments right now." in browser.page
    status = await browser.post("/hold", first_slot=first.id, second_slot=second.id)
    assert status == 409
    assert "Someone else has just taken these appointments" in browser.page


async def test_not_eligible_page_and_language_switch(env: Env) -> None:
    browser = Browser(env)
    await browser.get("/")
    assert await browser.post("/start", birth_date=YOUNG, postcode=HOME_POSTCODE) == 403
    assert "Sie sind 60 Jahre alt." in browser.page
    assert "Im Moment können Menschen ab 80 Jahren buchen." in browser.page
    assert "Ihre Gruppe (60+) kommt später dran." in browser.page
    async with env.client.get("/?lang=en", headers=env.headers("browser")) as resp:
        assert resp.headers["Content-Language"] == "en"
        assert "Book a vaccination appointment" in await resp.text()
    async with env.client.get("/", headers=env.headers("browser")) as resp:
        assert resp.headers["Content-Language"] == "en"  # remembered in a cookie
    async with env.client.get("/", headers={**env.headers("x"), "Accept-Language": "fr, en;q=0.5"}
                              ) as resp:
        assert resp.headers["Content-Language"] in ("en", "de")


async def test_waiting_list_and_manage_pages(env: Env) -> None:
    browser = Browser(env)
    await browser.get("/")
    await browser.post("/start", birth_date=OLD, postcode=HOME_POSTCODE)
    assert "Auf die Warteliste" in browser.page
    assert await browser.post("/waitlist", name="Wilma Wait", contact="+4915155555555",
                              centre="") == 200
    assert "Ihr Platz: 1" in browser.page
    await env.add_pairs(3, share=1.0)  # vaccine arrives: the waiting list is served first
    await env.deliver()
    (message,) = [m for m in env.sender.messages if m.kind == "assigned"]
    booking_code = re.search(r"[A-Z0-9]{4}-[A-Z0-9]{4}", message.text)
    assert booking_code

    manage = Browser(env)
    await manage.get("/manage")
    assert await manage.post("/manage", booking_code=booking_code.group(0),
                             birth_date="1.1.1950") == 404
    assert await manage.post("/manage", booking_code=booking_code.group(0),
                             birth_date=OLD) == 200
    assert "Wilma Wait" in manage.page
    assert await manage.post("/manage/cancel-code") == 200
    await env.deliver()
    assert await manage.post("/manage/cancel", code=env.sender.last_code()) == 200
    assert "Ihr Termin ist abgesagt" in manage.page
    # Nobody else waits: the page does not claim the pair went to the waiting list.
    assert "Warteliste" not in manage.page and "wieder frei" in manage.page
    assert (await env.backend.counts())["bookings"] == 0


async def test_static_assets_need_no_pass(env: Env) -> None:
    async with env.client.get("/static/booking.css") as resp:
        assert resp.status == 200 and resp.content_type == "text/css"
    async with env.client.get("/static/countdown.js") as resp:
        assert resp.status == 200


async def test_a_cancel_code_already_sent_can_still_be_typed(env: Env) -> None:
    """Leaving the code page and coming back: asking again too soon says to wait, and the
    field for the code already sent is there (it offered only "wait" before)."""
    pairs = await env.add_pairs(1)
    booking = await env.book(pairs[0], "keeper", contact="+4915122223333")
    manage = Browser(env)
    await manage.get("/manage")
    assert await manage.post("/manage", booking_code=booking["booking_code"],
                             birth_date=OLD) == 200
    assert await manage.post("/manage/cancel-code") == 200
    await env.deliver()
    code = env.sender.last_code()
    assert await manage.get("/manage") == 200  # away and back
    assert await manage.post("/manage", booking_code=booking["booking_code"],
                             birth_date=OLD) == 200
    assert await manage.post("/manage/cancel-code") == 429  # too soon for another code
    assert "Sekunden" in manage.page and 'name="code"' in manage.page
    assert await manage.post("/manage/cancel", code=code) == 200
    assert "Ihr Termin ist abgesagt" in manage.page
