"""The centre's desk on the admin port: the printable day list, and check-in from it.

A browser cannot send the admin bearer header, so the desk signs in once at
`/centre/login` with the admin token and then carries a session cookie (`bk_centre`:
signed, HttpOnly, SameSite=Strict, path `/centre`, valid for a working day). The cookie
holds a random session id and a fingerprint of the admin token: rotating the token ends
every session. It counts only here; the JSON API under `/admin/` still needs the bearer
token. Every form carries a CSRF token (the session id signed with a salt of its own).

    GET  /centre/login                   sign-in form
    POST /centre/login                   token -> session cookie, back to where one was going
    POST /centre/logout                  end the session
    GET  /centre/                        choose a centre and a day
    GET  /centre/{centre}/{day}          the day list (large type; `@media print`: A4)
    POST /centre/{centre}/{day}/attendance  mark a dose attended or no-show
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.resources
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from babel.dates import format_date

from booking_backend.daylist import DayLists, parse_day
from booking_backend.db import StoreUnavailable
from booking_backend.service import Service
from booking_backend.settings import Settings
from vaccine_queue.i18n import Translator, language_middleware
from vaccine_queue.pages import Pages, Problem, error_middleware
from vaccine_queue.signin import SignIn, read_form, see_other

log = logging.getLogger(__name__)

CENTRE_PREFIX = "/centre"
SESSION_COOKIE = "bk_centre"
SESSION_SALT = "booking.centre.session.v1"
CSRF_SALT = "booking.centre.csrf.v1"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 12 * 3600  # one working day at the desk
STORE_RETRY_AFTER_S = 30
# Our own files only, as on the citizens' pages: no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; style-src 'self'; script-src 'self'; form-action 'self';"
    " frame-ancestors 'none'"
)
_MAX_FORM_FIELD = 200

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def short_date(day: dt.date | None, t: Translator) -> str:
    """A calendar date (a birth date: no time zone) as `24.12.1938` / `24/12/1938`."""
    return "" if day is None else str(format_date(day, t("centre.daylist.birth_format"),
                                                    locale=t.lang))


def long_date(day: dt.date, t: Translator) -> str:
    """The list's day with its weekday: `Montag, 11.01.2021`."""
    return str(format_date(day, t("centre.daylist.day_format"), locale=t.lang))


def _store_trouble(request: web.Request, exc: Exception) -> Problem | None:
    if not isinstance(exc, StoreUnavailable):
        return None
    log.warning("centre pages: store unavailable for %s %s: %s", request.method, request.path,
                exc)
    return Problem("store_unavailable", 503, retry_after=STORE_RETRY_AFTER_S)


class CentreDesk:
    """The desk's handlers, with what they need injected."""

    def __init__(self, settings: Settings, service: Service, day_lists: DayLists) -> None:
        self.settings = settings
        self.service = service
        self.day_lists = day_lists
        self.pages = Pages("centre", timezone=settings.timezone,
                           globals={"birth_date": short_date, "short_date": short_date,
                                    "long_date": long_date},
                           content_security_policy=CONTENT_SECURITY_POLICY)
        # Demo/dev may run without QUEUE_GATE_SECRETS: then the admin token signs, so
        # several processes still agree (and a new token still ends every session).
        keys = settings.secrets or (
            hashlib.sha256(f"centre-key:{settings.admin_token}".encode()).hexdigest(),)
        self.signin = SignIn(
            prefix=CENTRE_PREFIX, cookie=SESSION_COOKIE, purpose="centre",
            session_salt=SESSION_SALT, csrf_salt=CSRF_SALT, secret_keys=keys,
            # The desk signs in with the admin token: one operator, "desk".
            operators=lambda: [("desk", settings.admin_token)] if settings.admin_token
            else [], secure=settings.cookie_secure, max_age_s=SESSION_MAX_AGE_S)

    # -- session ----------------------------------------------------------------------------
    def session_id(self, request: web.Request) -> str | None:
        """The signed-in desk's session id, or None."""
        signed_in = self.signin.read(request)
        return None if signed_in is None else signed_in.sid

    def csrf_token(self, sid: str) -> str:
        return self.signin.csrf_token(sid)

    def check_csrf(self, sid: str, token: object) -> None:
        self.signin.check_csrf(sid, token)

    def signed_in(self, handler: Callable[[CentreDesk, web.Request, str],
                                          Awaitable[web.StreamResponse]]) -> Handler:
        """Wrap a handler that needs a session: a page asked for without one sends the
        browser to sign in (and back); a form posted without one is refused with 401."""

        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            sid = self.session_id(request)
            if sid is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther(self.signin.login_url(request))
                raise Problem("centre_signin_required", 401)
            return await handler(self, request, sid)

        return wrapped

    # -- forms ----------------------------------------------------------------------------
    @staticmethod
    async def form(request: web.Request) -> dict[str, str]:
        return await read_form(request, _MAX_FORM_FIELD)

    def safe_next(self, raw: str) -> str:
        return self.signin.safe_next(raw)

    # -- handlers -------------------------------------------------------------------------
    async def login_page(self, request: web.Request) -> web.Response:
        return self.pages.render(request, "login.html",
                                 {"next": self.safe_next(request.query.get("next", "")),
                                  "wrong": False})

    async def login_submit(self, request: web.Request) -> web.StreamResponse:
        data = await self.form(request)
        target = self.safe_next(data.get("next", ""))
        matched = self.signin.match(data.get("token", ""))
        if matched is None:
            log.info("centre pages: sign-in refused")
            return self.pages.render(request, "login.html", {"next": target, "wrong": True},
                                     status=401)
        response = see_other(target)
        self.signin.start(response, *matched)
        return response

    async def logout(self, request: web.Request, sid: str) -> web.StreamResponse:
        data = await self.form(request)
        self.check_csrf(sid, data.get(CSRF_FIELD))
        response = see_other(f"{CENTRE_PREFIX}/login")
        self.signin.end(response)
        return response

    async def index(self, request: web.Request, sid: str) -> web.StreamResponse:
        """Choose a centre and a day (a GET form: it lands here and is sent on)."""
        catalogue = await self.service.catalogue()
        centre, day = request.query.get("centre", ""), request.query.get("date", "")
        if centre and day:
            parse_day(day)  # a readable 422 here rather than a 404 after the redirect
            raise web.HTTPSeeOther(f"{CENTRE_PREFIX}/{quote(centre, safe='')}/{day}")
        centres = sorted(catalogue.centres.values(), key=lambda c: c.name)
        return self.pages.render(request, "index.html", {
            "centres": centres, "today": self.day_lists.today().isoformat(),
            "csrf": self.csrf_token(sid)})

    async def day_page(self, request: web.Request, sid: str) -> web.Response:
        return await self.render_day(request, sid)

    async def render_day(self, request: web.Request, sid: str, *,
                         problem: Problem | None = None) -> web.Response:
        day = parse_day(request.match_info["day"])
        catalogue = await self.service.catalogue()
        found = await self.day_lists.day_list(catalogue, request.match_info["centre"], day)
        base = f"{CENTRE_PREFIX}/{quote(found.centre, safe='')}"
        return self.pages.render(request, "daylist.html", {
            "day_list": found, "now": self.day_lists.clock(), "csrf": self.csrf_token(sid),
            "can_mark": day <= self.day_lists.today(),
            "problem": problem, "base": base,
            "previous_day": (day - dt.timedelta(days=1)).isoformat(),
            "next_day": (day + dt.timedelta(days=1)).isoformat(),
        }, status=problem.status if problem else 200)

    async def mark(self, request: web.Request, sid: str) -> web.StreamResponse:
        data = await self.form(request)
        self.check_csrf(sid, data.get(CSRF_FIELD))
        parse_day(request.match_info["day"])
        try:
            mark = await self.day_lists.mark(data.get("code"), data.get("dose"),
                                             data.get("status"))
        except Problem as problem:
            # The desk stays on its list, with the reason on top.
            return await self.render_day(request, sid, problem=problem)
        if mark.changed:
            log.info("check-in at the desk: %s dose marked %s", mark.dose, mark.status)
        raise web.HTTPSeeOther(f"{request.path.removesuffix('/attendance')}"
                               f"#{mark.code}-{mark.dose}")

    async def stylesheet(self, request: web.Request) -> web.Response:
        data = (importlib.resources.files("booking_backend") / "data" / "centre.css").read_bytes()
        response = web.Response(body=data, content_type="text/css")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        raise Problem("not_found", 404)


def create_centre_app(settings: Settings, service: Service, day_lists: DayLists
                      ) -> web.Application:
    """The desk's pages, mounted on the admin app at `CENTRE_PREFIX` (HTML errors, German
    unless the browser or `?lang=` says English)."""
    desk = CentreDesk(settings, service, day_lists)
    app = web.Application(middlewares=[
        error_middleware(desk.pages, is_api=lambda request: False, convert=_store_trouble),
        language_middleware(secure_cookies=settings.cookie_secure),
    ])

    def bound(handler: Callable[[CentreDesk, web.Request, str],
                                Awaitable[web.StreamResponse]]) -> Handler:
        return desk.signed_in(handler)

    app.router.add_get("/login", desk.login_page)
    app.router.add_post("/login", desk.login_submit)
    app.router.add_post("/logout", bound(CentreDesk.logout))
    app.router.add_get("/static/centre.css", desk.stylesheet)
    app.router.add_get("/", bound(CentreDesk.index))
    app.router.add_get("/{centre}/{day}", bound(CentreDesk.day_page))
    app.router.add_post("/{centre}/{day}/attendance", bound(CentreDesk.mark))
    app.router.add_route("*", "/{tail:.*}", desk.not_found)
    return app


async def _to_index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(f"{CENTRE_PREFIX}/")


def install(app: web.Application, settings: Settings, service: Service,
            day_lists: DayLists) -> None:
    """Mount the desk's pages on the admin app (`/centre` itself leads to them)."""
    app.router.add_get(CENTRE_PREFIX, _to_index)
    app.add_subapp(CENTRE_PREFIX, create_centre_app(settings, service, day_lists))

