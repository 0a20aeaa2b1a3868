"""The citizen's pages (HTML, no JavaScript needed). Each POST checks its CSRF token; each
input error re-shows the form with a clear message."""

from __future__ import annotations

import importlib.resources
import logging
from collections import defaultdict
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from booking_backend import keys, sessions
from booking_backend.catalogue import Centre
from booking_backend.inventory import Booking, Offer, hold_verification
from booking_backend.problems import BookingError
from booking_backend.service import Person, Service
from booking_backend.sessions import CSRF_FIELD, Session

log = logging.getLogger(__name__)

END_SESSION_HEADER = "X-Queue-End-Session"
FormData = MultiDictProxy[Any]


def service_of(request: web.Request) -> Service:
    return request.app[keys.service_key]


def lang_of(request: web.Request) -> str:
    return request.get(keys.lang_key) or "de"


def owner_of(request: web.Request, session: Session) -> str:
    """Holds belong to the admission ticket; without a pass (dev only), to the session."""
    owner = request.get(keys.owner_key, "")
    return owner if owner.startswith("t:") else f"s:{session.sid}"


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def page(request: web.Request, session: Session, name: str, context: dict[str, Any],
               status: int = 200) -> web.Response:
    base: dict[str, Any] = {"csrf": sessions.csrf_token(request, session), "error": None,
                            "values": {}}
    base.update(context)
    # Forms re-show what was typed; a field not typed yet is simply empty.
    base["values"] = defaultdict(str, base["values"])
    response: web.Response = request.app[keys.render_key](request, name, base, status=status)
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


async def session_person(request: web.Request, session: Session) -> Person | None:
    if not session.get("birth_date"):
        return None
    try:
        return await service_of(request).person(
            session.get("birth_date"), session.get("postcode"), session.get("invitation_code"))
    except BookingError as exc:
        if exc.status >= 500:
            raise
        session.drop("birth_date", "postcode", "invitation_code")
        return None


# -- start ------------------------------------------------------------------------------------
async def start_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    values = {"birth_date": session.get("birth_date"), "postcode": session.get("postcode"),
              "invitation_code": session.get("invitation_code")}
    return await page(request, session, "start.html",
                      {"values": values, "open_groups": _open_groups(request)})


def _open_groups(request: web.Request) -> list[str]:
    """Minimum ages of the open groups, oldest first: the pages name the last (youngest)."""
    service = service_of(request)
    today = service.today()
    groups = sorted(service.settings.priority_groups, key=lambda g: -g.min_age)
    return [str(g.min_age) for g in groups if g.is_open(today)]


async def start_submit(request: web.Request) -> web.Response:
    session, form = await posted(request)
    values = {name: field(form, name) for name in ("birth_date", "postcode", "invitation_code")}
    try:
        person = await service_of(request).person(
            values["birth_date"], values["postcode"], values["invitation_code"])
    except BookingError as exc:
        if exc.status >= 500:
            raise
        return await page(request, session, "start.html", {
            "values": values, "error": exc, "open_groups": _open_groups(request)},
            status=exc.status)
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
async def appointments(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await _appointments(request, session)


async def _appointments(request: web.Request, session: Session,
                        error: BookingError | None = None, values: dict[str, str] | None = None,
                        ) -> web.Response:
    person = await session_person(request, session)
    if person is None:
        return await redirect(request, "/")
    if not person.decision.eligible:
        return await not_eligible(request, session, person)
    service = service_of(request)
    centres, offers = await service.search(person)
    catalogue = await service.catalogue()
    by_centre: dict[str, list[Offer]] = {}
    for offer in offers:
        by_centre.setdefault(offer.centre.id, []).append(offer)
    return await page(request, session, "appointments.html", {
        "district": person.district, "centres": centres, "offers": offers,
        "offers_by_centre": by_centre, "home_centres": catalogue.centres_of(person.district.id),
        "hold_minutes": max(1, service.settings.hold_seconds // 60),
        "error": error, "values": values or {},
    }, status=error.status if error else 200)


async def hold(request: web.Request) -> web.Response:
    session, form = await posted(request)
    person = await session_person(request, session)
    if person is None:
        return await redirect(request, "/")
    try:
        hid, _ = await service_of(request).hold(
            person, field(form, "first_slot"), field(form, "second_slot"),
            owner_of(request, session), lang_of(request))
    except BookingError as exc:
        if exc.code == "not_eligible":
            return await not_eligible(request, session, person)
        if exc.status >= 500:
            raise
        return await _appointments(request, session, exc)
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
    state = await service.inventory.get_hold(hid, owner_of(request, session))
    if state is None:
        session.drop("hold")
        return await redirect(request, "/appointments")
    if state.booking:
        session.set(booking=state.booking)
        return await redirect(request, "/confirmation")
    if state.status != "held":
        session.drop("hold")
        return await _appointments(request, session, BookingError("hold_expired", 410))
    catalogue = await service.catalogue()
    centre = catalogue.centres.get(state.centre)
    contact = service.hold_contact(state)
    ctx: dict[str, Any] = {"hold": state, "centre": centre, "now": service.inventory.now(),
                           "masked": contact.masked if contact else "",
                           "code_minutes": max(1, service.settings.code_validity_seconds // 60)}
    ctx.update(context)
    return await page(request, session, name, ctx, status=status)


async def details_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await _hold_page(request, session, "details.html", {})


async def details_submit(request: web.Request) -> web.Response:
    session, form = await posted(request)
    values = {"name": field(form, "name"), "contact": field(form, "contact")}
    try:
        await service_of(request).submit_details(
            session.get("hold"), owner_of(request, session), values["name"], values["contact"],
            lang_of(request))
    except BookingError as exc:
        if exc.status >= 500:
            raise
        return await _hold_page(request, session, "details.html",
                                {"values": values, "error": exc}, status=exc.status)
    return await redirect(request, "/verify")


async def verify_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await _verify(request, session, None, resent=request.query.get("resent") == "1")


async def _verify(request: web.Request, session: Session, error: BookingError | None,
                  resent: bool = False) -> web.Response:
    service = service_of(request)
    hid = session.get("hold")
    delivered = False
    if hid:
        state = await service.verifier.state(hold_verification(hid), None)
        delivered = state.delivered
    return await _hold_page(request, session, "verify.html",
                            {"error": error, "delivered": delivered, "resent": resent},
                            status=error.status if error else 200)


async def verify_submit(request: web.Request) -> web.Response:
    session, form = await posted(request)
    service = service_of(request)
    try:
        booking, _ = await service.confirm(session.get("hold"), owner_of(request, session),
                                           field(form, "code"), "web")
    except BookingError as exc:
        if exc.status >= 500 and exc.code != "code_failed":
            raise
        return await _verify(request, session, exc)
    # The hold stays in the session: a re-submitted form (double click, reload) reaches
    # confirm-2.lua again and gets this same booking back.
    session.set(booking=booking.code)
    # Answered with the page itself, not a redirect: the gate ends the queue session on this
    # header, and a follow-up GET would no longer carry a valid pass.
    response = await _confirmation(request, session, booking)
    response.headers[END_SESSION_HEADER] = "1"
    return response


async def resend(request: web.Request) -> web.Response:
    session, _ = await posted(request)
    try:
        await service_of(request).resend(session.get("hold"), owner_of(request, session))
    except BookingError as exc:
        if exc.status >= 500:
            raise
        return await _verify(request, session, exc)
    return await redirect(request, "/verify?resent=1")


# -- confirmation -----------------------------------------------------------------------------
async def _centre(request: web.Request, centre_id: str) -> Centre | None:
    catalogue = await service_of(request).catalogue()
    return catalogue.centres.get(centre_id)


async def _confirmation(request: web.Request, session: Session, booking: Booking) -> web.Response:
    return await page(request, session, "confirmation.html",
                      {"booking": booking, "centre": await _centre(request, booking.centre)})


async def confirmation(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    code = session.get("booking")
    booking = await service_of(request).inventory.booking(code) if code else None
    if booking is None:
        return await redirect(request, "/")
    return await _confirmation(request, session, booking)


# -- waiting list -----------------------------------------------------------------------------
async def waitlist_submit(request: web.Request) -> web.Response:
    session, form = await posted(request)
    person = await session_person(request, session)
    if person is None:
        return await redirect(request, "/")
    values = {"name": field(form, "name"), "contact": field(form, "contact")}
    try:
        status, position, contact = await service_of(request).join_waitlist(
            person, values["name"], values["contact"], field(form, "centre"), lang_of(request))
    except BookingError as exc:
        if exc.code == "not_eligible":
            return await not_eligible(request, session, person)
        if exc.status >= 500:
            raise
        return await _appointments(request, session, exc, values)
    return await page(request, session, "waitlist_joined.html", {
        "position": position, "already": status == "already_waiting", "masked": contact.masked})


# -- manage -----------------------------------------------------------------------------------
async def manage_page(request: web.Request) -> web.Response:
    session = await sessions.load(request)
    return await page(request, session, "manage.html", {})


async def _manage_booking(request: web.Request, session: Session, booking: Booking,
                          error: BookingError | None = None, code_sent: bool = False,
                          ) -> web.Response:
    contact = service_of(request).booking_contact(booking)
    return await page(request, session, "manage_booking.html", {
        "booking": booking, "centre": await _centre(request, booking.centre),
        "masked": contact.masked, "error": error, "code_sent": code_sent,
    }, status=error.status if error else 200)


async def manage_submit(request: web.Request) -> web.Response:
    session, form = await posted(request)
    values = {"booking_code": field(form, "booking_code"), "birth_date": field(form, "birth_date")}
    try:
        booking = await service_of(request).find_booking(
            values["booking_code"], values["birth_date"])
    except BookingError as exc:
        if exc.status >= 500:
            raise
        return await page(request, session, "manage.html", {"values": values, "error": exc},
                          status=exc.status)
    session.set(manage=booking.code)
    return await _manage_booking(request, session, booking)


async def _managed(request: web.Request, session: Session) -> Booking | None:
    code = session.get("manage")
    return await service_of(request).inventory.booking(code) if code else None


async def cancel_code(request: web.Request) -> web.Response:
    session, _ = await posted(request)
    booking = await _managed(request, session)
    if booking is None:
        return await redirect(request, "/manage")
    try:
        await service_of(request).request_cancel_code(booking)
    except BookingError as exc:
        if exc.status >= 500:
            raise
        return await _manage_booking(request, session, booking, exc)
    return await _manage_booking(request, session, booking, code_sent=True)


async def cancel(request: web.Request) -> web.Response:
    session, form = await posted(request)
    booking = await _managed(request, session)
    if booking is None:
        return await redirect(request, "/manage")
    try:
        await service_of(request).cancel(booking, field(form, "code"))
    except BookingError as exc:
        if exc.status >= 500:
            raise
        return await _manage_booking(request, session, booking, exc, code_sent=True)
    session.drop("manage", "booking")
    return await page(request, session, "cancelled.html", {})


# -- static -----------------------------------------------------------------------------------
def _static(name: str, content_type: str) -> web.Response:
    data = (importlib.resources.files("booking_backend") / "data" / name).read_bytes()
    response = web.Response(body=data, content_type=content_type)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


async def stylesheet(request: web.Request) -> web.Response:
    return _static("booking.css", "text/css")


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
    app.router.add_post("/waitlist", waitlist_submit)
    app.router.add_get("/manage", manage_page)
    app.router.add_post("/manage", manage_submit)
    app.router.add_post("/manage/cancel-code", cancel_code)
    app.router.add_post("/manage/cancel", cancel)
    app.router.add_get("/static/booking.css", stylesheet)
    app.router.add_get("/static/countdown.js", countdown_script)
