"""The citizen's pages (HTML, no JavaScript needed). Each POST checks its CSRF token; a
problem the person can fix shows the form again with a clear message (`form`).

Pages reach the data only through the service (`service.py`)."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from booking_backend import keys, sessions
from booking_backend.catalogue import Centre
from booking_backend.days import CHOICES, DayChoice, parse_choice
from booking_backend.ics import booking_calendar
from booking_backend.inventory import Booking, Offer
from booking_backend.service import Person, Service
from booking_backend.sessions import CSRF_FIELD, Session
from vaccine_queue.contract import END_SESSION_HEADER
from vaccine_queue.i18n import request_language, translator
from vaccine_queue.pages import Handler, Problem
from vaccine_queue.site import DEMO_LEGAL_PAGES, demo_legal_page, stylesheet_response

log = logging.getLogger(__name__)

FormData = MultiDictProxy[Any]
FormHandler = Callable[[web.Request, Session, FormData], Awaitable[web.Response]]
Reshow = Callable[[web.Request, Session, FormData, Problem], Awaitable[web.Response]]
# Server-side codes the person can still act on: the code could not be sent to that
# number or address, so they correct it on the form.
FIXABLE_5XX = frozenset({"code_failed"})


def service_of(request: web.Request) -> Service:
    return request.app[keys.service_key]


def owner_of(request: web.Request, session: Session) -> str:
    """Holds belong to the admission ticket; without a pass (dev only), to the session."""
    owner = request.get(keys.owner_key, "")
    return owner if owner.startswith("t:") else f"s:{session.sid}"


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def values_of(form: FormData, *names: str) -> dict[str, str]:
    return {name: field(form, name) for name in names}


async def page(request: web.Request, session: Session, name: str, context: dict[str, Any],
               status: int = 200) -> web.Response:
    base: dict[str, Any] = {"csrf": sessions.csrf_token(request, session), "error": None,
                            "values": {}}
    base.update(context)
    # Forms re-show what was typed; a field not typed yet is simply empty.
    base["values"] = defaultdict(str, base["values"])
    response = request.app[keys.pages_key].render(request, name, base, status=status)
    await sessions.save(request, response)
    return response


async def redirect(request: web.Request, location: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    await sessions.save(request, response)
    return response


async def posted(request: web.Request) -> tuple[Session, FormData]:
    """Read a form and check its CSRF token against this session."""
    form = await request.post()
    session = await sessions.load(request)
    sessions.check_csrf(request, session, form.get(CSRF_FIELD))
    return session, form


def form(reshow: Reshow) -> Callable[[FormHandler], Handler]:
    """A POST whose `Problem`s the person can fix show the form again with the error (and
    what they typed, through `reshow`); trouble on our side goes on to the error page."""

    def decorate(handler: FormHandler) -> Handler:
        @functools.wraps(handler)
        async def view(request: web.Request) -> web.Response:
            session, data = await posted(request)
            try:
                return await handler(request, session, data)
            except Problem as problem:
                if problem.status >= 500 and problem.code not in FIXABLE_5XX:
                    raise
                return await reshow(request, session, data, problem)

        return view

    return decorate


async def session_person(request: web.Request, session: Session) -> Person | None:
    if not session.get("birth_date"):
        return None
    try:
        return await service_of(request).person(
            session.get("birth_date"), session.get("postcode"), session.get("invitation_code"))
    except Problem as exc:
        if exc.status >= 500:
            raise
        session.drop("birth_date", "postcode", "invitation_code")
        return None


# -- start ------------------------------------------------------------------------------------
START_FIELDS = ("birth_date", "postcode", "invitation_code")


async def start_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    values = {name: session.get(name) for name in START_FIELDS}
    return await _start(request, session, values)


async def _start(request: web.Request, session: Session, values: dict[str, str],
                 error: Problem | None = None) -> web.Response:
    return await page(request, session, "start.html", {
        "values": values, "error": error, "open_groups": _open_groups(request),
    }, status=error.status if error else 200)


def _open_groups(request: web.Request) -> list[str]:
    """Minimum ages of the open groups, oldest first: the pages name the last (youngest)."""
    service = service_of(request)
    today = service.today()
    groups = sorted(service.settings.priority_groups, key=lambda g: -g.min_age)
    return [str(g.min_age) for g in groups if g.is_open(today)]


async def _start_again(request: web.Request, session: Session, data: FormData,
                       error: Problem) -> web.Response:
    return await _start(request, session, values_of(data, *START_FIELDS), error)


@form(_start_again)
async def start_submit(request: web.Request, session: Session, data: FormData) -> web.Response:
    values = values_of(data, *START_FIELDS)
    person = await service_of(request).person(
        values["birth_date"], values["postcode"], values["invitation_code"])
    session.set(**values)
    if not person.decision.eligible:
        return await not_eligible(request, session, person)
    return await redirect(request, "/appointments")


async def not_eligible(request: web.Request, session: Session, person: Person) -> web.Response:
    decision = person.decision
    opens = ""
    if decision.next_group and decision.next_group.opens:
        opens = decision.next_group.opens.strftime("%d.%m.%Y")
    return await page(request, session, "not_eligible.html", {
        "decision": decision,
        "open_groups": [str(g.min_age) for g in sorted(decision.open_groups,
                                                       key=lambda g: -g.min_age)],
        "opens": opens, "invitation_min_age": person.invitation_min_age or "",
    }, status=403)


# -- appointments -----------------------------------------------------------------------------
# A short page on a phone: a few pairs per centre for one day and time of day, the next days
# with free pairs to choose from, and "more" for one centre.
PAGE_PAIRS_PER_CENTRE = 3
MORE_PAIRS = 12
CHOOSER_DAYS = 7


def appointments_link(day: dt.date | None, time_of_day: str, centre: str = "") -> str:
    """The appointments page for a day, a time of day and (for "more") one centre."""
    query = {"day": day.isoformat() if day else "", "time_of_day": time_of_day,
             "centre": centre}
    return "/appointments?" + urlencode({k: v for k, v in query.items() if v})


async def appointments(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await _appointments(request, session, asked=request.query)


async def _appointments(request: web.Request, session: Session,
                        error: Problem | None = None, values: dict[str, str] | None = None,
                        asked: Mapping[str, str] | None = None) -> web.Response:
    """The offers on a day and time of day (or the waiting list); someone who may not book
    sees why instead. A day or time of day that cannot be used shows the first day with the
    reason (422)."""
    person = await session_person(request, session)
    if person is None:
        return await redirect(request, "/")
    if not person.decision.eligible:
        return await not_eligible(request, session, person)
    service = service_of(request)
    asked = asked or {}
    only = asked.get("centre", "")
    centres = await service.centres(person)
    try:
        choice = parse_choice(asked.get("day"), asked.get("time_of_day"))
        if only and only not in {c.id for c in centres}:
            raise Problem("centre_unknown", 422, field="centre")
    except Problem as problem:
        error, choice, only = problem, DayChoice(), ""
    days = await service.offer_days(centres, CHOOSER_DAYS)
    if choice.day is None and days:
        choice = choice.on(days[0].day)
    per_centre = MORE_PAIRS if only else PAGE_PAIRS_PER_CENTRE
    offers: list[Offer] = []
    if days:
        try:
            _, offers = await service.search(person, choice, only=only, per_centre=per_centre + 1)
        except Problem as problem:  # a day outside the bookable days
            if problem.status >= 500:
                raise
            error, choice, only = problem, DayChoice(days[0].day), ""
            per_centre = PAGE_PAIRS_PER_CENTRE
            _, offers = await service.search(person, choice, per_centre=per_centre + 1)
    by_centre: dict[str, list[Offer]] = {}
    for offer in offers:
        by_centre.setdefault(offer.centre.id, []).append(offer)
    more = {cid for cid, listed in by_centre.items() if len(listed) > per_centre}
    by_centre = {cid: listed[:per_centre] for cid, listed in by_centre.items()}
    later = [d for d in days if choice.day is not None and d.day > choice.day]
    catalogue = await service.catalogue()
    return await page(request, session, "appointments.html", {
        "district": person.district,
        "centres": [c for c in centres if not only or c.id == only],
        "offers": offers, "offers_by_centre": by_centre, "more": more, "only": only,
        "days": days, "choice": choice, "times": CHOICES, "next_day": later[0] if later else None,
        "link": appointments_link,
        "local_day": lambda epoch: service.local(epoch).date(),
        "home_centres": catalogue.centres_of(person.district.id),
        "hold_minutes": max(1, service.settings.hold_seconds // 60),
        "error": error, "values": values or {},
    }, status=error.status if error else 200)


async def _appointments_again(request: web.Request, session: Session, data: FormData,
                              error: Problem) -> web.Response:
    # The hold form carries the day and time of day it was shown for.
    asked = {name: value for name, value in values_of(data, "day", "time_of_day").items()
             if value}
    return await _appointments(request, session, error, values_of(data, "name", "contact"),
                               asked=asked)


@form(_appointments_again)
async def hold(request: web.Request, session: Session, data: FormData) -> web.Response:
    person = await session_person(request, session)
    if person is None:
        return await redirect(request, "/")
    hid, _ = await service_of(request).hold(
        person, field(data, "first_slot"), field(data, "second_slot"),
        owner_of(request, session), request_language(request))
    session.set(hold=hid)
    session.drop("booking")
    return await redirect(request, "/details")


async def release(request: web.Request) -> web.Response:
    session, _ = await posted(request)
    if session.get("hold"):
        await service_of(request).release(session.get("hold"), owner_of(request, session))
        session.drop("hold")
    return await redirect(request, "/appointments")


# -- details and code -------------------------------------------------------------------------
async def _hold_page(request: web.Request, session: Session, name: str,
                     context: dict[str, Any], status: int = 200) -> web.Response:
    """A page about the live hold; an expired hold sends the person back to choose again."""
    service = service_of(request)
    hid = session.get("hold")
    if not hid:
        return await redirect(request, "/appointments")
    state = await service.find_hold(hid, owner_of(request, session))
    if state is None:
        session.drop("hold")
        return await redirect(request, "/appointments")
    if state.booking:
        session.set(booking=state.booking)
        return await redirect(request, "/confirmation")
    if state.status != "held":
        session.drop("hold")
        return await _appointments(request, session, Problem("hold_expired", 410))
    catalogue = await service.catalogue()
    contact = service.hold_contact(state)
    ctx: dict[str, Any] = {"hold": state, "centre": catalogue.centres.get(state.centre),
                           "now": service.now(), "masked": contact.masked if contact else "",
                           "code_minutes": max(1, service.settings.code_validity_seconds // 60)}
    ctx.update(context)
    return await page(request, session, name, ctx, status=status)


DETAIL_FIELDS = ("name", "contact")


async def details_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await _hold_page(request, session, "details.html", {})


async def _details_again(request: web.Request, session: Session, data: FormData,
                         error: Problem) -> web.Response:
    return await _hold_page(request, session, "details.html",
                            {"values": values_of(data, *DETAIL_FIELDS), "error": error},
                            status=error.status)


@form(_details_again)
async def details_submit(request: web.Request, session: Session,
                         data: FormData) -> web.Response:
    values = values_of(data, *DETAIL_FIELDS)
    await service_of(request).submit_details(
        session.get("hold"), owner_of(request, session), values["name"], values["contact"],
        request_language(request))
    return await redirect(request, "/verify")


async def verify_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await _verify(request, session, None, resent=request.query.get("resent") == "1")


async def _verify(request: web.Request, session: Session, error: Problem | None,
                  resent: bool = False) -> web.Response:
    hid = session.get("hold")
    delivered = (await service_of(request).hold_code(hid)).delivered if hid else False
    return await _hold_page(request, session, "verify.html",
                            {"error": error, "delivered": delivered, "resent": resent},
                            status=error.status if error else 200)


async def _verify_again(request: web.Request, session: Session, data: FormData,
                        error: Problem) -> web.Response:
    return await _verify(request, session, error)


@form(_verify_again)
async def verify_submit(request: web.Request, session: Session,
                        data: FormData) -> web.Response:
    booking, _ = await service_of(request).confirm(
        session.get("hold"), owner_of(request, session), field(data, "code"), "web")
    # The hold stays in the session: a re-submitted form (double click, reload) reaches
    # the booking step again and gets this same booking back.
    session.set(booking=booking.code)
    # Post/Redirect/Get: the confirmation's own address, which needs no pass (this browser's
    # session names the booking), so a reload shows it again rather than re-sending the code
    # after the gate has ended the queue session on this header. The gate proxies
    # /confirmation without a pass (QUEUE_GATE_BYPASS_PATHS, or a bypass route).
    response = await redirect(request, "/confirmation")
    response.headers[END_SESSION_HEADER] = "1"
    return response


@form(_verify_again)
async def resend(request: web.Request, session: Session, data: FormData) -> web.Response:
    await service_of(request).resend(session.get("hold"), owner_of(request, session))
    return await redirect(request, "/verify?resent=1")


# -- confirmation -----------------------------------------------------------------------------
async def _centre(request: web.Request, centre_id: str) -> Centre | None:
    catalogue = await service_of(request).catalogue()
    return catalogue.centres.get(centre_id)


async def _confirmation(request: web.Request, session: Session, booking: Booking) -> web.Response:
    """The booking, to keep: it prints itself and links nowhere behind the gate, because
    the queue session ends with it."""
    return await page(request, session, "confirmation.html",
                      {"booking": booking, "centre": await _centre(request, booking.centre)})


async def confirmation(request: web.Request) -> web.Response:
    """The confirmation again (reload, print, back button): it needs no pass, because the
    booking ended the queue session; this browser's session names the booking."""
    session = await sessions.load(request)
    booking = await service_of(request).booking(session.get("booking"))
    if booking is None:
        return await redirect(request, "/manage")
    return await _confirmation(request, session, booking)


def calendar_file(session_field: str) -> Handler:
    """GET /confirmation/calendar.ics (the booking this browser made) and
    /manage/calendar.ics (the one it opened with code and birth date): both appointments
    for the person's calendar. The code is not in the URL, so not in any access log."""

    async def handler(request: web.Request) -> web.Response:
        session = await sessions.load(request)
        return await _calendar_file(request, session, session.get(session_field))

    return handler


async def _calendar_file(request: web.Request, session: Session, code: str) -> web.Response:
    if not code:
        raise Problem("not_found", 404)
    service = service_of(request)
    booking = await service.booking(code)
    if booking is None or booking.status != "active":
        raise Problem("not_found", 404)
    t = translator(request_language(request))
    body = booking_calendar(booking, await _centre(request, booking.centre), t,
                            now=service.now(), domain=service.settings.deployment)
    response = web.Response(body=body, content_type="text/calendar", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{t("ics.filename")}-{code}.ics"',
        "Cache-Control": "no-store"})
    await sessions.save(request, response)
    return response


# -- demo inbox -------------------------------------------------------------------------------
async def demo_inbox(request: web.Request) -> web.Response:
    """GET /demo/inbox: what the demo sent (codes included), newest first; 404 outside
    demo mode."""
    inbox = request.app[keys.backend_key].inbox
    if inbox is None:
        raise web.HTTPNotFound()
    session = await sessions.load(request)
    return await page(request, session, "inbox.html", {"messages": list(inbox.messages)})


# -- waiting list -----------------------------------------------------------------------------
@form(_appointments_again)
async def waitlist_submit(request: web.Request, session: Session,
                          data: FormData) -> web.Response:
    person = await session_person(request, session)
    if person is None:
        return await redirect(request, "/")
    values = values_of(data, *DETAIL_FIELDS)
    status, position, contact = await service_of(request).join_waitlist(
        person, values["name"], values["contact"], field(data, "centre"),
        request_language(request))
    return await page(request, session, "waitlist_joined.html", {
        "position": position, "already": status == "already_waiting", "masked": contact.masked})


# -- manage -----------------------------------------------------------------------------------
MANAGE_FIELDS = ("booking_code", "birth_date")


async def manage_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await page(request, session, "manage.html", {})


async def _manage_again(request: web.Request, session: Session, data: FormData,
                        error: Problem) -> web.Response:
    return await page(request, session, "manage.html",
                      {"values": values_of(data, *MANAGE_FIELDS), "error": error},
                      status=error.status)


@form(_manage_again)
async def manage_submit(request: web.Request, session: Session, data: FormData) -> web.Response:
    values = values_of(data, *MANAGE_FIELDS)
    booking = await service_of(request).find_booking(values["booking_code"],
                                                     values["birth_date"])
    session.set(manage=booking.code)
    return await _manage_booking(request, session, booking)


async def _manage_booking(request: web.Request, session: Session, booking: Booking,
                          error: Problem | None = None, code_sent: bool = False,
                          ) -> web.Response:
    contact = service_of(request).booking_contact(booking)
    return await page(request, session, "manage_booking.html", {
        "booking": booking, "centre": await _centre(request, booking.centre),
        "masked": contact.masked, "error": error, "code_sent": code_sent,
    }, status=error.status if error else 200)


async def _managed(request: web.Request, session: Session) -> Booking | None:
    return await service_of(request).booking(session.get("manage"))


def _managed_again(*, code_sent: bool) -> Reshow:
    """The booking again with the error; `code_sent`: whether the code form is shown. Asked
    for a new code too soon means a code was sent a moment ago: the form for it is shown,
    so whoever left the page and came back can still type the code they have."""

    async def reshow(request: web.Request, session: Session, data: FormData,
                     error: Problem) -> web.Response:
        booking = await _managed(request, session)
        if booking is None:
            return await redirect(request, "/manage")
        return await _manage_booking(request, session, booking, error,
                                     code_sent=code_sent or error.code == "code_wait")

    return reshow


@form(_managed_again(code_sent=False))
async def cancel_code(request: web.Request, session: Session, data: FormData) -> web.Response:
    booking = await _managed(request, session)
    if booking is None:
        return await redirect(request, "/manage")
    await service_of(request).request_cancel_code(booking)
    return await _manage_booking(request, session, booking, code_sent=True)


@form(_managed_again(code_sent=True))
async def cancel(request: web.Request, session: Session, data: FormData) -> web.Response:
    booking = await _managed(request, session)
    if booking is None:
        return await redirect(request, "/manage")
    assigned = await service_of(request).cancel(booking, field(data, "code"))
    session.drop("manage", "booking")
    # Only say the pair went to the waiting list when it did.
    return await page(request, session, "cancelled.html", {"handed_on": bool(assigned)})


# -- static -----------------------------------------------------------------------------------
def _static(name: str, content_type: str) -> web.Response:
    data = (importlib.resources.files("booking_backend") / "data" / name).read_bytes()
    response = web.Response(body=data, content_type=content_type)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


async def stylesheet(request: web.Request) -> web.Response:
    """The site's one stylesheet (site/site.css), as the gate serves it at /queue/static/."""
    return stylesheet_response(request.app[keys.pages_key])


async def legal_page(request: web.Request) -> web.Response:
    """The demo's placeholder Impressum and Datenschutz pages (vaccine_queue/site.py)."""
    return demo_legal_page(request, request.app[keys.pages_key],
                           request.app[keys.settings_key].site)


async def countdown_script(request: web.Request) -> web.Response:
    return _static("countdown.js", "application/javascript")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", start_page, name="start")
    app.router.add_post("/start", start_submit)
    app.router.add_get("/appointments", appointments)
    app.router.add_post("/hold", hold)
    app.router.add_post("/release", release)
    app.router.add_get("/details", details_page)
    app.router.add_post("/details", details_submit)
    app.router.add_get("/verify", verify_page)
    app.router.add_post("/verify", verify_submit)
    app.router.add_post("/resend", resend)
    app.router.add_get("/confirmation", confirmation)
    app.router.add_get("/confirmation/calendar.ics", calendar_file("booking"))
    app.router.add_get("/manage/calendar.ics", calendar_file("manage"))
    app.router.add_get("/demo/inbox", demo_inbox)
    app.router.add_post("/waitlist", waitlist_submit)
    app.router.add_get("/manage", manage_page)
    app.router.add_post("/manage", manage_submit)
    app.router.add_post("/manage/cancel-code", cancel_code)
    app.router.add_post("/manage/cancel", cancel)
    app.router.add_get("/static/booking.css", stylesheet)
    for path in DEMO_LEGAL_PAGES:
        app.router.add_get(path, legal_page)
    app.router.add_get("/static/countdown.js", countdown_script)
