"""One error middleware: friendly pages for people, JSON for apps, never a stack trace."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from queue_gate.i18n import TEXTS, choose_language
from queue_gate.keys import metrics_key, pages_key, settings_key
from queue_gate.store import GateUnavailable

log = logging.getLogger(__name__)

BUSY_RETRY_S = 5


class UpstreamBroken(Exception):
    """The backend failed mid-response; aiohttp must drop the connection, not answer again."""


def is_api(request: web.Request) -> bool:
    if request.path.startswith("/queue/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_page(request: web.Request, status: int, text_key: str, *,
               retry_after: int | None = None) -> web.Response:
    """A page in the visitor's language; pages that retry by themselves say so."""
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
        headers["Refresh"] = str(retry_after)
    texts = TEXTS[choose_language(request)]
    heading = texts["busy_heading"] if status == 503 else texts["error_heading"]
    return request.app[pages_key].render(
        request, "error.html", {"heading": heading, "text": texts[text_key],
                                "retry_after": retry_after},
        status=status, headers=headers,
    )


def _json(status: int, code: str, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.json_response({"error": code, "message": message}, status=status,
                             headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if is_api(request):
            return _json(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        return error_page(request, exc.status,
                          "not_found" if exc.status == 404 else "request_error")
    except GateUnavailable as exc:
        room = request.app[settings_key].room
        request.app[metrics_key].redis_errors.labels(room, "request").inc()
        log.warning("Redis unavailable while serving %s: %s", request.path, exc)
        if is_api(request):
            return _json(503, "busy", "The waiting room is very busy; retry in a few seconds.",
                         BUSY_RETRY_S)
        return error_page(request, 503, "busy", retry_after=BUSY_RETRY_S)
    except UpstreamBroken:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        if is_api(request):
            return _json(500, "internal_error", "Something went wrong on our side. "
                         "Your place in line is kept; please try again.")
        return error_page(request, 500, "internal_error")
