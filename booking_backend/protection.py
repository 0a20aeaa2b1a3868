"""Only visitors admitted by the queue gate get in: every page and API call needs a pass.

The pass (cookie `qg_pass` or header `X-Queue-Pass`) is signed by the gate and checked here
with the same secrets, so copying or forging a cookie skips nothing. Requests without one
get a 403 that points back to the queue.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from booking_backend import keys
from booking_backend.errors import Handler, is_api, json_error, request_lang
from booking_backend.i18n import LANG_COOKIE, LANGS, pick_language
from booking_backend.problems import BookingError
from queue_gate.tickets import PASS_COOKIE, PASS_HEADER, TokenRejected

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/api/v1/openapi.json", "/static/booking.css", "/static/countdown.js"})
QUEUE_PATH = "/queue/wait"


def queue_link(request: web.Request) -> str:
    return f"{QUEUE_PATH}?next={quote(request.path, safe='/')}"


@web.middleware
async def language_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pick the language once per request; `?lang=` is remembered in a cookie."""
    request[keys.lang_key] = pick_language(request)
    response = await handler(request)
    asked = request.query.get("lang", "")
    if asked in LANGS and not response.prepared:
        settings = request.app[keys.settings_key]
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, samesite="Lax",
                            secure=settings.secure_cookies, path="/")
    return response


@web.middleware
async def pass_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[keys.settings_key]
    if request.path in OPEN_PATHS:
        return await handler(request)
    token = request.headers.get(PASS_HEADER) or request.cookies.get(PASS_COOKIE, "")
    if token:
        try:
            admission = request.app[keys.pass_verifier_key].load(
                token, room=settings.pass_room or None)
        except TokenRejected as exc:
            if settings.require_pass:
                return refuse(request, exc.code)
        else:
            request[keys.admission_key] = admission
            request[keys.owner_key] = f"t:{admission.ticket_id}"
            return await handler(request)
    elif settings.require_pass:
        return refuse(request, "pass_missing")
    # Development only (BOOKING_REQUIRE_PASS=0 needs BOOKING_DEV or BOOKING_DEMO): API
    # clients name themselves; browsers are told apart by their session (see views).
    request[keys.owner_key] = "anon:" + request.headers.get("X-Client-Id", "")[:64]
    return await handler(request)


def refuse(request: web.Request, reason: str) -> web.Response:
    request.app[keys.metrics_key].pass_rejections.labels(reason=reason).inc()
    error = BookingError(reason, 403, extra={"queue": queue_link(request)})
    if is_api(request):
        return json_error(request, error)
    render = request.app[keys.render_key]
    request.setdefault(keys.lang_key, request_lang(request))
    return render(request, "no_pass.html", {"error": error, "queue": queue_link(request)},
                  status=403)
