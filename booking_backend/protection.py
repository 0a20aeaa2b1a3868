"""Only visitors admitted by the queue gate get in: every page and API call needs a pass.

The pass (cookie `qg_pass` or header `X-Queue-Pass`, both named by the contract) is signed
by the gate and checked here with the same secrets, so copying or forging a cookie skips
nothing. Requests without one get a 403 that points back to the queue.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from booking_backend import keys
from vaccine_queue.contract import (
    PASS_COOKIE,
    PASS_HEADER,
    QUEUE_WAIT_PATH,
    TokenRejected,
)
from vaccine_queue.pages import Handler, Problem
from vaccine_queue.site import DEMO_LEGAL_PAGES

log = logging.getLogger(__name__)

# Served to everyone: the API's description and the pages' static files (a confirmation
# page, shown after the pass has ended, still needs its stylesheet and print script).
OPEN_PATHS = frozenset({"/api/v1/openapi.json", "/static/booking.css", "/static/countdown.js",
                        "/static/print.js", *DEMO_LEGAL_PAGES})
# What a citizen needs after their queue session ended, guarded by their booking code (and
# birth date) or their own session instead of a pass: the confirmation again (reload, print,
# calendar file), managing and cancelling a booking, and the demo's inbox (demo mode only).
# The gate proxies these without a pass when QUEUE_GATE_BYPASS_PATHS names them.
PASS_FREE_PATHS = frozenset({"/confirmation", "/manage", "/manage/cancel-code",
                             "/manage/cancel", "/manage/calendar.ics", "/demo/inbox"})
PASS_FREE_PREFIXES = ("/confirmation/",)


def queue_link(request: web.Request) -> str:
    return f"{QUEUE_WAIT_PATH}?next={quote(request.path, safe='/')}"


@web.middleware
async def pass_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[keys.settings_key]
    if request.path in OPEN_PATHS:
        return await handler(request)
    if request.path in PASS_FREE_PATHS or request.path.startswith(PASS_FREE_PREFIXES):
        request[keys.owner_key] = "anon:"  # sessions, not holds: nothing here holds a slot
        return await handler(request)
    token = request.headers.get(PASS_HEADER) or request.cookies.get(PASS_COOKIE, "")
    if token:
        try:
            admission = request.app[keys.pass_codec_key].load(
                token, room=settings.pass_room or None)
        except TokenRejected as exc:
            if settings.require_pass:
                raise refusal(request, exc.code) from None
        else:
            request[keys.admission_key] = admission
            request[keys.owner_key] = f"t:{admission.ticket_id}"
            return await handler(request)
    elif settings.require_pass:
        raise refusal(request, "pass_missing")
    # Development only (BOOKING_REQUIRE_PASS=0 needs BOOKING_DEV or BOOKING_DEMO): API
    # clients name themselves; browsers are told apart by their session (see views).
    request[keys.owner_key] = "anon:" + request.headers.get("X-Client-Id", "")[:64]
    return await handler(request)


def refusal(request: web.Request, reason: str) -> Problem:
    """A 403 naming the way back to the queue (the error page shows it as a button)."""
    request.app[keys.metrics_key].pass_rejections.labels(reason=reason).inc()
    return Problem(reason, 403, extra={"queue": queue_link(request)})
