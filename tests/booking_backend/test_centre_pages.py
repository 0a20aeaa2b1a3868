"""The centre's desk pages on the admin port: sign-in with the admin token, the session
cookie (only for /centre), CSRF on every form, the day list in German and English, and
check-in from it."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from booking_backend.centre_pages import SESSION_COOKIE
from tests.booking_backend.conftest import (
    ADMIN_TOKEN,
    CENTRE,
    FIRST_DAY,
    SECOND_DAY,
    Env,
    MakeEnv,
    local,
)
from tests.booking_backend.test_daylist import booked_day
from vaccine_queue.i18n import catalogue

Client = TestClient[web.Request, web.Application]
PAGE = f"/centre/{CENTRE}/{FIRST_DAY.isoformat()}"
DE, EN = catalogue("de"), catalogue("en")


async def sign_in(client: Client, next_path: str = PAGE) -> str:
    async with client.post("/centre/login", data={"token": ADMIN_TOKEN, "next": next_path},
                           allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == next_path
        cookie = resp.headers["Set-Cookie"]
    return cookie


async def page(client: Client, path: str = PAGE, **kwargs: object) -> tuple[int, str]:
    async with client.get(path, allow_redirects=False, **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.text()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
async def desk(make_env: MakeEnv) -> tuple[Env, dict[str, str]]:
    env = await make_env(cancel_requires_code=False)
    codes = await booked_day(env)
    env.clock.now = local(FIRST_DAY, 7, 30)  # the desk opens
    return env, codes


async def test_pages_need_a_sign_in_with_the_admin_token(desk: tuple[Env, dict[str, str]]
                                                         ) -> None:
    env, _ = desk
    async with env.admin.get(PAGE, allow_redirects=False) as resp:
        assert resp.status == 303
        target = URL(resp.headers["Location"])
        assert (target.path, target.query["next"]) == ("/centre/login", PAGE)
    status, html = await page(env.admin, "/centre/login?next=%2Fcentre%2F")
    assert status == 200 and DE["centre.login.heading"] in html and 'lang="de"' in html
    async with env.admin.post("/centre/login", data={"token": "wrong", "next": PAGE}) as resp:
        assert resp.status == 401
        html = await resp.text()
        assert DE["centre.login.wrong"] in html and SESSION_COOKIE not in resp.cookies
    cookie = SimpleCookie(await sign_in(env.admin))[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/centre"
    status, html = await page(env.admin)
    assert status == 200 and "Anna Alt" in html


async def test_the_cookie_counts_only_for_the_centre_pages(desk: tuple[Env, dict[str, str]]
                                                           ) -> None:
    env, _ = desk
    cookie = SimpleCookie(await sign_in(env.admin))[SESSION_COOKIE].value
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    for path in (f"/admin/centres/{CENTRE}/days/{FIRST_DAY}", "/admin/stats"):
        async with env.admin.get(path, headers=headers) as resp:
            assert resp.status == 401
    # ... and a forged or tampered cookie is no session.
    env.admin.session.cookie_jar.clear()
    for forged in ("x", cookie[:-2] + "AA"):
        status, _ = await page(env.admin, headers={"Cookie": f"{SESSION_COOKIE}={forged}"})
        assert status == 303


async def test_a_new_admin_token_ends_every_session(make_env: MakeEnv,
                                                    desk: tuple[Env, dict[str, str]]) -> None:
    env, _ = desk
    cookie = SimpleCookie(await sign_in(env.admin))[SESSION_COOKIE].value
    rotated = await make_env(catalogue=False, admin_token="a-new-token")
    status, _ = await page(rotated.admin, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert status == 303


async def test_next_never_leaves_the_centre_pages(desk: tuple[Env, dict[str, str]]) -> None:
    env, _ = desk
    for target in ("//evil.example/", "https://evil.example/", "/admin/stats", "/centre\\x"):
        async with env.admin.post("/centre/login", data={"token": ADMIN_TOKEN, "next": target},
                                  allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/centre/", target


async def test_the_day_list_page_in_german_and_english(desk: tuple[Env, dict[str, str]]
                                                       ) -> None:
    env, codes = desk
    await sign_in(env.admin)
    status, html = await page(env.admin)
    assert status == 200
    names = ["Anna Alt", "Bernd Bauer", "Wilma Warte"]
    assert [html.index(n) for n in names] == sorted(html.index(n) for n in names)
    main, cancelled = html.split('id="cancelled"')
    assert "Carla Storno" in cancelled and "Carla Storno" not in main
    for text in ("08:00", "24.12.1938", codes["Anna Alt"], DE["centre.daylist.dose_first"],
                 "Montag, 11.01.2021", DE["centre.daylist.checkin"]):
        assert text in html, text
    assert DE["centre.daylist.counts"].format(due=3, attended=0, no_show=0, unmarked=3) in html
    assert "script" not in html and "style=" not in html  # the CSP allows neither inline
    status, html = await page(env.admin, f"{PAGE}?lang=en")
    assert status == 200 and 'lang="en"' in html
    for text in ("Monday, 11 January 2021", "24/12/1938", EN["centre.daylist.dose_first"],
                 EN["centre.daylist.attended"], EN["centre.daylist.cancelled"]):
        assert text in html, text
    async with env.admin.get("/centre/static/centre.css") as resp:
        assert resp.status == 200 and "@media print" in await resp.text()


async def test_check_in_from_the_list(desk: tuple[Env, dict[str, str]]) -> None:
    env, codes = desk
    await sign_in(env.admin)
    _, html = await page(env.admin)
    token = csrf_of(html)
    form = {"csrf_token": token, "code": codes["Anna Alt"], "dose": "first",
            "status": "attended"}
    for _ in range(2):  # a double click marks once
        async with env.admin.post(f"{PAGE}/attendance", data=form,
                                  allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == f"{PAGE}#{codes['Anna Alt']}-first"
    async with env.admin.post(f"{PAGE}/attendance", allow_redirects=False, data={
            **form, "code": codes["Bernd Bauer"], "status": "no_show"}) as resp:
        assert resp.status == 303
    _, html = await page(env.admin)
    assert DE["centre.daylist.counts"].format(due=3, attended=1, no_show=1, unmarked=1) in html
    assert f'id="{codes["Anna Alt"]}-first" class="line attended"' in html
    row = await env.backend.db.fetchrow(
        "SELECT first_attendance, first_marked_at FROM bookings WHERE code = $1",
        codes["Anna Alt"])
    assert row is not None and tuple(row) == ("attended", local(FIRST_DAY, 7, 30))
    # A refusal keeps the desk on its list, with the reason on top.
    async with env.admin.post(f"{PAGE}/attendance", data={
            **form, "code": codes["Carla Storno"]}) as resp:
        assert resp.status == 409
        html = await resp.text()
        assert DE["err.booking_not_active"] in html and "Anna Alt" in html
    # The second doses' day is still ahead: no buttons, and a posted mark is refused.
    second = f"/centre/{CENTRE}/{SECOND_DAY.isoformat()}"
    status, html = await page(env.admin, second)
    assert status == 200 and 'name="status"' not in html
    async with env.admin.post(f"{second}/attendance", data={**form, "dose": "second"}) as resp:
        assert resp.status == 409 and DE["err.dose_not_due"] in await resp.text()


async def test_forms_need_the_session_and_its_csrf_token(desk: tuple[Env, dict[str, str]]
                                                         ) -> None:
    env, codes = desk
    form = {"code": codes["Anna Alt"], "dose": "first", "status": "attended"}
    async with env.admin.post(f"{PAGE}/attendance", data={**form, "csrf_token": "x"}) as resp:
        assert resp.status == 401 and DE["err.centre_signin_required"] in await resp.text()
    await sign_in(env.admin)
    _, html = await page(env.admin)
    token = csrf_of(html)
    for bad in ("", "forged", token[:-3] + "abc"):
        async with env.admin.post(f"{PAGE}/attendance", data={**form, "csrf_token": bad}
                                  ) as resp:
            assert resp.status == 400 and DE["err.csrf_invalid"] in await resp.text()
    # A token of another session (another desk signed in) does not fit this one.
    other = await sign_in(env.admin)
    async with env.admin.post(f"{PAGE}/attendance", data={**form, "csrf_token": token},
                              headers={"Cookie": other.split(";")[0]}) as resp:
        assert resp.status == 400
    await sign_in(env.admin)
    _, html = await page(env.admin)
    async with env.admin.post(f"{PAGE}/attendance", data={
            **form, "dose": "third", "csrf_token": csrf_of(html)}) as resp:
        assert resp.status == 422 and DE["err.dose_invalid"] in await resp.text()
    async with env.admin.post("/centre/logout", data={"csrf_token": csrf_of(html)},
                              allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/centre/login"
    status, _ = await page(env.admin)
    assert status == 303


async def test_bad_days_centres_and_paths_get_readable_pages(
        desk: tuple[Env, dict[str, str]]) -> None:
    env, _ = desk
    await sign_in(env.admin)
    for path, status, key in (
        (f"/centre/{CENTRE}/2021-13-01", 422, "err.day_invalid"),
        (f"/centre/{CENTRE}/11.01.2021", 422, "err.day_invalid"),
        ("/centre/atlantis/2021-01-11", 404, "err.centre_unknown"),
        ("/centre/a/b/c/d", 404, "err.not_found"),
        ("/centre/?centre=braunschweig&date=tomorrow", 422, "err.day_invalid"),
    ):
        found, html = await page(env.admin, path)
        assert found == status, path
        assert DE[key] in html and "<html" in html, path
    async with env.admin.get("/centre", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (301, "/centre/")
    status, html = await page(env.admin, "/centre/")
    assert status == 200 and 'value="2021-01-11"' in html and "Braunschweig" in html
    async with env.admin.get("/centre/?centre=braunschweig&date=2021-01-11",
                             allow_redirects=False) as resp:
        assert resp.headers["Location"] == PAGE
    async with env.admin.post(f"{PAGE}/attendance", data=b"\xff\xfe",
                              headers={"Content-Type": "multipart/form-data"}) as resp:
        assert 400 <= resp.status < 500
