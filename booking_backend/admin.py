"""The operators' API, on its own port: the gate proxies every public path to the backend,
so nothing administrative may live on the public app.

All `/admin/...` routes need `Authorization: Bearer <BOOKING_ADMIN_TOKEN>`; `/healthz` and
`/metrics` are open (this port must not be reachable from the internet). The centre's
pages under `/centre/` (`centre_pages.py`) sign in with the same token once and then carry
a session cookie, which counts nowhere else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import zoneinfo
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from booking_backend import keys, retention, turn_near
from booking_backend.catalogue import CatalogueError, demo_catalogue_json
from booking_backend.centre_pages import CENTRE_PREFIX
from booking_backend.centre_pages import install as install_centre_pages
from booking_backend.closures import ClosureError, Closures, parse_request
from booking_backend.daylist import DayLists, parse_day, to_csv, to_json
from booking_backend.db import StoreUnavailable
from booking_backend.eligibility import InvalidInput, parse_birth_date
from booking_backend.inventory import parse_slot_document
from booking_backend.levels import read_levels
from booking_backend.metrics import ATTENDANCE_METRICS, LEVEL_METRICS
from vaccine_queue.contract import TURN_NEAR_PATH
from vaccine_queue.i18n import translator
from vaccine_queue.pages import Handler, Problem

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/metrics"})
# Paths with a token of their own instead of the admin token (the gate's turn messages).
OWN_TOKEN_PATHS = frozenset({TURN_NEAR_PATH})


def _error(code: str, message: str, status: int) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == CENTRE_PREFIX or request.path.startswith(f"{CENTRE_PREFIX}/"):
        return await handler(request)  # the centre's pages check their own session
    if request.path not in OPEN_PATHS and request.path not in OWN_TOKEN_PATHS:
        token = request.app[keys.settings_key].admin_token
        given = request.headers.get("Authorization", "")
        # No token configured means no admin access at all, never "anyone".
        # The bytes as sent: a header that is not UTF-8 arrives with surrogate escapes.
        sent = given.encode("utf-8", "surrogateescape")
        if not token or not hmac.compare_digest(sent, f"Bearer {token}".encode()):
            response = _error("unauthorized", "A valid admin bearer token is required.", 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="booking-admin"'
            return response
    try:
        return await handler(request)
    except Problem as exc:
        # Operators read English: the problem's own message, else the catalogue's words.
        english = translator("en")
        default = exc.message(english) if english.has(exc.message_key) else exc.code
        return _error(exc.code, str(exc.extra.get("message", default)), exc.status)
    except StoreUnavailable as exc:
        log.warning("admin: store unavailable: %s", exc)
        response = _error("store_unavailable", "The database is unavailable.", 503)
        response.headers["Retry-After"] = "30"
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.reason.lower().replace(" ", "_"), exc.reason, exc.status)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem("json_invalid", 400,
                      extra={"message": "Body is not valid JSON."}) from exc


def _bad(message: str, status: int = 422) -> Problem:
    return Problem("invalid", status, extra={"message": message})


async def healthz(request: web.Request) -> web.Response:
    db = request.app[keys.db_key]
    try:
        await db.ping()
    except StoreUnavailable:
        return web.json_response({"status": "unavailable", "database": False}, status=503)
    return web.json_response({"status": "ok", "database": True})


async def metrics(request: web.Request) -> web.Response:
    """All metrics, or only those named by `name[]` (as prometheus_client's own exporter):
    a frequent probe of one process-local value then costs no database read."""
    backend = request.app[keys.backend_key]
    names = set(request.query.getall("name[]", []))
    if not names or names & LEVEL_METRICS:
        # When the database is down the scrape still answers; gauges keep their last values.
        with contextlib.suppress(StoreUnavailable):
            backend.metrics.observe(await read_levels(backend.db), backend.clock())
    now = backend.clock()
    if (not names or names & ATTENDANCE_METRICS) and backend.metrics.attendance_due(now):
        with contextlib.suppress(StoreUnavailable):
            catalogue = await backend.catalogue.get()
            if catalogue is not None:
                backend.metrics.observe_attendance(
                    await _day_lists(request).attendance(catalogue.centres), now)
    registry = backend.registry.restricted_registry(names) if names else backend.registry
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def load_catalogue(request: web.Request) -> web.Response:
    body = await request.text()
    try:
        catalogue = await request.app[keys.catalogue_key].save(body)
    except CatalogueError as exc:
        raise _bad(str(exc)) from exc
    return web.json_response({"centres": len(catalogue.centres),
                              "districts": len(catalogue.districts)})


async def load_demo_catalogue(request: web.Request) -> web.Response:
    catalogue = await request.app[keys.catalogue_key].save(demo_catalogue_json())
    return web.json_response({"centres": len(catalogue.centres),
                              "districts": len(catalogue.districts)})


def _share(raw: dict[str, Any]) -> float | None:
    share = raw.get("waitlist_share")
    if share is None:
        return None
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise _bad("waitlist_share must be a number from 0 to 1")
    return float(share)


async def release_slots(request: web.Request) -> web.Response:
    """Add slots (vaccine arrived). A share of the new pairs goes to the waiting list."""
    backend = request.app[keys.backend_key]
    raw = await _json(request)
    catalogue = await backend.service.catalogue()
    try:
        per_centre = parse_slot_document(raw, catalogue, backend.settings.timezone)
    except ValueError as exc:
        raise _bad(str(exc)) from exc
    share = _share(raw)
    added, assigned = 0, 0
    for cid, slots in per_centre.items():
        outcome = await backend.inventory.release_slots(catalogue.centres[cid], slots,
                                                        share=share)
        added += int(outcome.value)
        assigned += len(outcome.extra)
    if assigned:
        backend.metrics.bookings.labels(channel="waitlist").inc(assigned)
        backend.outbox.wakeup()
    log.info("released %d slot units; %d waiting-list assignments", added, assigned)
    return web.json_response({"units_added": added, "waitlist_assigned": assigned})


async def generate(request: web.Request) -> web.Response:
    backend = request.app[keys.backend_key]
    raw = await _json(request)
    if not isinstance(raw, dict):
        raise _bad("expected a JSON object")
    ints: dict[str, int] = {}
    for name, default, lo, hi in (("days", backend.settings.demo_days, 1, 400),
                                  ("units", 2, 1, 100), ("step_minutes", 30, 5, 240)):
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _bad(f"{name} must be a whole number from {lo} to {hi}")
        ints[name] = value
    first_day = None
    if raw.get("first_day") is not None:
        try:
            first_day = dt.date.fromisoformat(str(raw["first_day"]))
        except ValueError as exc:
            raise _bad("first_day must be YYYY-MM-DD") from exc
    await backend.service.catalogue()
    added = await backend.generate_demo_slots(
        first_day=first_day, days=ints["days"], units=ints["units"],
        step_minutes=ints["step_minutes"], share=_share(raw))
    backend.outbox.wakeup()
    return web.json_response({"units_added": added})


async def stats(request: web.Request) -> web.Response:
    backend = request.app[keys.backend_key]
    levels = await read_levels(backend.db)
    backend.metrics.observe(levels, backend.clock())
    return web.json_response({"counts": levels.counts, "centres": levels.centres})


async def create_invitations(request: web.Request) -> web.Response:
    backend = request.app[keys.backend_key]
    raw = await _json(request)
    if not isinstance(raw, dict):
        raise _bad("expected a JSON object")
    wave, min_age, count = raw.get("wave"), raw.get("min_age"), raw.get("count")
    if not isinstance(wave, str) or not wave.strip() or len(wave) > 60:
        raise _bad("wave must be a short name")
    if isinstance(min_age, bool) or not isinstance(min_age, int) or not 0 <= min_age <= 120:
        raise _bad("min_age must be a whole number from 0 to 120")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
        raise _bad("count must be a whole number from 1 to 100000")
    created, codes = await backend.invitations.create_wave(wave.strip(), min_age, count)
    log.info("invitation wave %s: %d codes for %d+", created.name, count, min_age)
    return web.json_response({"wave": created.name, "min_age": min_age, "codes": codes},
                             status=201)


async def list_invitations(request: web.Request) -> web.Response:
    waves = await request.app[keys.backend_key].invitations.waves()
    return web.json_response({"waves": [
        {"wave": w.name, "min_age": w.min_age, "count": w.count, "created": w.created}
        for w in waves]})


async def sweep(request: web.Request) -> web.Response:
    backend = request.app[keys.backend_key]
    expired = await backend.inventory.sweep()
    codes = await backend.verifier.expire_codes()
    return web.json_response({"holds_expired": expired, "codes_expired": codes})


# -- cancelling a range of a centre, retention (issue 17) ------------------------------------
def _closures(request: web.Request) -> Closures:
    backend = request.app[keys.backend_key]
    return Closures(backend.db, backend.settings, backend.clock)


def _closure_problem(exc: ClosureError) -> Problem:
    return Problem("not_found" if exc.status == 404 else "invalid", exc.status,
                   extra={"message": str(exc)})


async def create_closure(request: web.Request) -> web.Response:
    """Cancel every booking of a centre in [from, until) and close the range; with
    `dry_run`, only say how many people it would affect."""
    backend = request.app[keys.backend_key]
    raw = await _json(request)
    closures = _closures(request)
    try:
        wanted = parse_request(request.match_info["centre"], raw,
                               zoneinfo.ZoneInfo(backend.settings.timezone), closures.now())
        if wanted.dry_run:
            counts = await closures.preview(wanted)
            return web.json_response({"dry_run": True, "centre": wanted.centre,
                                      "from": wanted.from_at, "until": wanted.until_at,
                                      **counts})
        cid, counts, assigned = await closures.close(wanted)
    except ClosureError as exc:
        raise _closure_problem(exc) from exc
    backend.outbox.wakeup()
    backend.metrics.closure_cancellations.inc(counts["bookings"])
    if assigned:
        backend.metrics.bookings.labels(channel="waitlist").inc(len(assigned))
    return web.json_response({"dry_run": False, "closure": cid, "centre": wanted.centre,
                              "from": wanted.from_at, "until": wanted.until_at, **counts},
                             status=201)


async def list_closures(request: web.Request) -> web.Response:
    try:
        found = await _closures(request).list(request.match_info["centre"])
    except ClosureError as exc:
        raise _closure_problem(exc) from exc
    return web.json_response({"closures": found})


async def purge(request: web.Request) -> web.Response:
    backend = request.app[keys.backend_key]
    raw = await _json(request) if request.can_read_body else {}
    if not isinstance(raw, dict) or not isinstance(raw.get("dry_run", False), bool):
        raise _bad("expected a JSON object; dry_run must be true or false")
    dry_run = bool(raw.get("dry_run", False))
    counts = await retention.purge(backend.db, int(backend.clock()),
                                   backend.settings.retention_days, dry_run=dry_run)
    log.info("purge%s: %s", " (dry run)" if dry_run else "", counts)
    return web.json_response({"dry_run": dry_run,
                              "retention_days": backend.settings.retention_days, **counts})


async def export_person(request: web.Request) -> web.Response:
    """Everything stored about the person of a booking (a request under GDPR Art. 15)."""
    backend = request.app[keys.backend_key]
    raw = await _json(request)
    if not isinstance(raw, dict):
        raise _bad("expected a JSON object with booking_code and birth_date")
    try:
        born = parse_birth_date(raw.get("birth_date"), backend.service.today())
    except InvalidInput as exc:
        raise _bad("birth_date must be a date (DD.MM.YYYY or YYYY-MM-DD)", 400) from exc
    try:
        found = await retention.export(backend.db, raw.get("booking_code"), born)
    except retention.NotFound as exc:
        raise Problem("not_found", 404, extra={
            "message": "No booking with this code and birth date."}) from exc
    return web.json_response(found)
# -- the centre's day list and check-in (issue 17) ---------------------------------------
def _day_lists(request: web.Request) -> DayLists:
    backend = request.app[keys.backend_key]
    return DayLists(backend.db, backend.clock, backend.settings.timezone)


async def day_list(request: web.Request) -> web.Response:
    """`GET /admin/centres/{centre}/days/{day}` as JSON; `{day}.csv` or `?format=csv` as CSV."""
    raw = request.match_info["day"]
    as_csv = raw.endswith(".csv") or request.query.get("format") == "csv"
    day = parse_day(raw.removesuffix(".csv"))
    catalogue = await request.app[keys.service_key].catalogue()
    found = await _day_lists(request).day_list(catalogue, request.match_info["centre"], day)
    if not as_csv:
        return web.json_response(to_json(found))
    name = f"daylist-{found.centre}-{found.day.isoformat()}.csv"
    return web.Response(text=to_csv(found), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})


async def mark_attendance(request: web.Request) -> web.Response:
    """`POST /admin/bookings/{code}/attendance` `{"dose": ..., "status": ...}`."""
    raw = await _json(request)
    if not isinstance(raw, dict):
        raise _bad("expected a JSON object with dose and status")
    mark = await _day_lists(request).mark(request.match_info["code"], raw.get("dose"),
                                          raw.get("status"))
    if mark.changed:
        log.info("check-in: %s dose of a booking marked %s", mark.dose, mark.status)
    return web.json_response({"booking_code": mark.code, "dose": mark.dose,
                              "status": mark.status, "marked_at": mark.marked_at,
                              "previous": mark.previous, "changed": mark.changed})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/admin/catalogue", load_catalogue)
    app.router.add_post("/admin/catalogue/demo", load_demo_catalogue)
    app.router.add_post("/admin/slots", release_slots)
    app.router.add_post("/admin/slots/generate", generate)
    app.router.add_get("/admin/stats", stats)
    app.router.add_post("/admin/invitations", create_invitations)
    app.router.add_get("/admin/invitations", list_invitations)
    app.router.add_post("/admin/sweep", sweep)
    # Issue 17: cancelling a range of a centre, retention and export.
    app.router.add_post("/admin/centres/{centre}/closures", create_closure)
    app.router.add_get("/admin/centres/{centre}/closures", list_closures)
    app.router.add_post("/admin/purge", purge)
    app.router.add_post("/admin/persons/export", export_person)
    # The centre's day list and check-in (issue 17)
    app.router.add_get("/admin/centres/{centre}/days/{day}", day_list)
    app.router.add_post("/admin/bookings/{code}/attendance", mark_attendance)
    # The queue gate's turn messages (issue 16), with the notify token.
    turn_near.setup_routes(app)
    backend = app[keys.backend_key]
    install_centre_pages(app, backend.settings, backend.service,
                         DayLists(backend.db, backend.clock, backend.settings.timezone))


