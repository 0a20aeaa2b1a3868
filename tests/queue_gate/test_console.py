"""The operators' console on the admin port (queue_gate/console.py), driven as a browser
without JavaScript would: sign-in, CSRF, the confirmation step, the audit, readable errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from queue_gate.admin import create_admin_app
from queue_gate.console import SESSION_COOKIE, LineHistory, plot
from queue_gate.keys import room_view_key
from tests.queue_gate.conftest import ADMIN_TOKEN, Gate, GateFactory, join

Client = TestClient[web.Request, web.Application]
OPS_TOKEN = "ops-token-abcdefghij"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def console_gate(make_gate: GateFactory) -> Gate:
    gate = await make_gate(admin_tokens=(f"ops:{OPS_TOKEN}",), initial_rate_per_minute=10)
    await gate.tick()
    return gate


@pytest.fixture
async def console(
    aiohttp_client: Callable[..., Awaitable[Client]], console_gate: Gate,
) -> Client:
    return await aiohttp_client(create_admin_app(console_gate.app))


async def sign_in(console: Client, token: str = OPS_TOKEN, lang: str = "?lang=en") -> str:
    """Sign in; the CSRF token of the rooms page."""
    response = await console.post("/console/login", data={"token": token, "next": "/console/"},
                                  allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/console/"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    page = await console.get(f"/console/{lang}")
    assert page.status == 200
    found = CSRF.search(await page.text())
    assert found is not None
    return found.group(1)


async def test_pages_need_a_session_and_a_known_token(console: Client) -> None:
    response = await console.get("/console/rooms/default", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/console/login?next=")
    figures = await console.get("/console/rooms/default/figures.json")
    assert figures.status == 401
    assert (await figures.json())["error"] == "console_signin_required"
    wrong = await console.post("/console/login?lang=en", data={"token": "nope"})
    assert wrong.status == 401
    assert "We do not know this token" in await wrong.text()
    assert SESSION_COOKIE not in wrong.cookies
    # A forged cookie counts for nothing.
    console.session.cookie_jar.update_cookies({SESSION_COOKIE: "forged.value.sig"})
    again = await console.get("/console/", allow_redirects=False)
    assert again.status == 303


async def test_every_form_needs_its_csrf_token(console: Client) -> None:
    csrf = await sign_in(console)
    for data in ({"rate_per_minute": "5"}, {"rate_per_minute": "5", "csrf_token": "forged"},
                 {"rate_per_minute": "5", "csrf_token": csrf[:-2] + "xx"}):
        for action in ("change", "apply"):
            response = await console.post(f"/console/rooms/default/{action}?lang=en", data=data)
            assert response.status == 400, action
            assert response.content_type == "text/html"
            assert "<h1>" in await response.text()
    logout = await console.post("/console/logout", data={}, allow_redirects=False)
    assert logout.status == 400


async def test_a_change_is_confirmed_applied_and_audited_under_the_operator(
    console: Client, console_gate: Gate,
) -> None:
    for _ in range(20):
        await join(console_gate)
    await console_gate.tick()
    csrf = await sign_in(console)
    room = await console.get("/console/rooms/default?lang=en")
    text = await room.text()
    assert "Room default" in text and "Estimated wait of the last in line" in text
    assert "No changes are scheduled" in text

    # The confirmation: current and new value, and the last in line's wait (20 at 10/min:
    # 2 minutes; at 5/min: 4 minutes). Nothing is written yet.
    confirm = await console.post("/console/rooms/default/change?lang=en",
                                 data={"csrf_token": csrf, "rate_per_minute": "5"})
    assert confirm.status == 200
    page = await confirm.text()
    assert "goes from about 2 minutes to about 4 minutes" in page
    assert (await console_gate.app[room_view_key].store.read_config()).rate_per_minute == 10
    new_csrf = CSRF.search(page)
    assert new_csrf is not None

    applied = await console.post("/console/rooms/default/apply",
                                 data={"csrf_token": new_csrf.group(1), "rate_per_minute": "5"},
                                 allow_redirects=False)
    assert applied.status == 303
    assert applied.headers["Location"] == "/console/rooms/default?done=1"
    done = await console.get("/console/rooms/default?done=1&lang=en")
    assert "The change is saved" in await done.text()

    audit = await console.get("/admin/audit?room=default",
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    entries = (await audit.json())["entries"]
    assert [(e["operator"], e["field"], e["old"], e["new"]) for e in entries] == [
        ("ops", "rate_per_minute", 10, 5)]
    audit_page = await (await console.get("/console/audit?lang=en")).text()
    assert '<td class="operator">ops</td>' in audit_page

    # Pause with a message: the confirmation says nobody is admitted.
    paused = await console.post("/console/rooms/default/change?lang=en", data={
        "csrf_token": csrf, "mode": "paused", "message": "Back at <b>8:30</b>"})
    body = await paused.text()
    assert "goes from about 4 minutes to nobody is admitted" in body
    assert "&lt;b&gt;8:30&lt;/b&gt;" in body and "<b>8:30" not in body
    figures = await (await console.get("/console/rooms/default/figures.json?lang=en")).json()
    assert figures["waiting"] == 20 and figures["text"]["last_wait"] == "about 4 minutes"


@pytest.mark.parametrize(("data", "words"), [
    ({"rate_per_minute": "fast"}, "The rate must be a whole number from 0 to 1,000,000."),
    ({"rate_per_minute": "-3"}, "The rate must be a whole number"),
    ({"rate_per_minute": "99999999999999999999"}, "The rate must be a whole number"),
    ({"session_minutes": "0"}, "whole number of minutes from 1 to 1,440"),
    ({"mode": "open-sesame"}, "Please choose one of the modes offered."),
    ({"message": "x" * 1001}, "at most 1000 characters"),
    ({}, "The form held no setting."),
])
async def test_bad_input_gets_a_readable_page(console: Client, data: dict[str, str],
                                              words: str) -> None:
    csrf = await sign_in(console)
    for action in ("change", "apply"):
        response = await console.post(f"/console/rooms/default/{action}?lang=en",
                                      data={"csrf_token": csrf, **data})
        assert response.status == 422, action
        assert response.content_type == "text/html"
        assert words in await response.text()


async def test_unknown_rooms_and_paths_are_readable_404s(console: Client) -> None:
    await sign_in(console)
    for path in ("/console/rooms/nowhere", "/console/rooms/NOT%20A%20ROOM",
                 "/console/no-such-page", "/console/static/secrets.py"):
        response = await console.get(f"{path}?lang=en")
        assert response.status == 404, path
        assert response.content_type == "text/html"
    gone = await console.get("/console/audit?room=Bad Room")
    assert gone.status == 404


async def test_german_by_default_and_english_on_request(console: Client) -> None:
    await sign_in(console)  # which chose English
    console.session.cookie_jar.clear_domain("127.0.0.1")
    await sign_in(console, lang="")
    german = await console.get("/console/", headers={"Accept-Language": "de"})
    text = await german.text()
    assert '<html lang="de">' in text and "Räume" in text
    english = await console.get("/console/?lang=en")
    assert '<html lang="en">' in await english.text()
    assert "script-src 'self'" in english.headers["Content-Security-Policy"]


async def test_a_rotated_token_ends_the_session(
    aiohttp_client: Callable[..., Awaitable[Client]], make_gate: GateFactory,
    console: Client,
) -> None:
    await sign_in(console)
    cookie = console.session.cookie_jar.filter_cookies(console.make_url("/console/"))
    rotated = await make_gate(admin_tokens=("ops:another-token-0123",))
    other = await aiohttp_client(create_admin_app(rotated.app))
    other.session.cookie_jar.update_cookies(
        {SESSION_COOKIE: cookie[SESSION_COOKIE].value})
    response = await other.get("/console/", allow_redirects=False)
    assert response.status == 303


def test_the_line_plot_draws_the_last_hour() -> None:
    history = LineHistory(every=10)

    class Snap:
        def __init__(self, now: float, waiting: int, admitted: int) -> None:
            self.now, self.waiting, self.admitted = now, waiting, admitted
            self.config = type("C", (), {"mode": "queue"})()

    class View:
        snapshot: Snap | None = None

    view = View()
    for i in range(500):  # more than an hour of ticks every 10 s
        view.snapshot = Snap(1000.0 + i * 10, 500 - i, i * 2)
        history.record(view)
        history.record(view)  # the same snapshot twice: one sample
    points = history.points()
    assert points[-1][0] - points[0][0] <= 3600
    assert points[-1][2] == pytest.approx(12.0)  # 2 admitted per 10 s
    drawn = plot(points)
    assert drawn.waiting_path.startswith("M") and drawn.admitted_path
    assert drawn.last_waiting == 1


async def test_the_confirmation_lists_only_what_changes(console: Client) -> None:
    csrf = await sign_in(console)
    same = await console.post("/console/rooms/default/change?lang=en",
                              data={"csrf_token": csrf, "rate_per_minute": "10"})
    assert "Nothing changes" in await same.text()
    paused = await (await console.post("/console/rooms/default/change?lang=en", data={
        "csrf_token": csrf, "mode": "paused", "message": ""})).text()
    assert '<th scope="row">Mode</th>' in paused
    assert '<th scope="row">Message</th>' not in paused  # sent along, unchanged
