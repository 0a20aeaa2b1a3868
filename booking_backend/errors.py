"""Errors people can understand, and the middleware that renders them.

Views and the service raise `BookingError` with a stable code; browsers get a friendly page
in their language, the API gets `{"error": code, "message": text}`. Redis trouble arrives as
`StoreUnavailable` and becomes a 503 that asks people to try again in a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from booking_backend import keys
from booking_backend.i18n import pick_language, translate
from booking_backend.problems import BookingError
from booking_backend.store import StoreUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_PREFIX = "/api/"


_HTTP_CODES = {
    404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
    415: "unsupported_media_type", 400: "bad_request",
}


def is_api(request: web.Request) -> bool:
    return request.path.startswith(API_PREFIX)


def request_lang(request: web.Request) -> str:
    lang = request.get(keys.lang_key)
    return lang if lang else pick_language(request)


def json_error(request: web.Request, error: BookingError) -> web.Response:
    body: dict[str, object] = {
        "error": error.code,
        "message": translate(request_lang(request), f"err.{error.code}", error.params),
    }
    if error.field:
        body["field"] = error.field
    body.update(error.extra)
    return web.json_response(body, status=error.status)


def html_error(request: web.Request, error: BookingError) -> web.Response:
    render = request.app[keys.render_key]
    return render(request, "error.html", {"error": error}, status=error.status)


def error_response(request: web.Request, error: BookingError) -> web.Response:
    return json_error(request, error) if is_api(request) else html_error(request, error)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BookingError as exc:
        return error_response(request, exc)
    except StoreUnavailable as exc:
        log.warning("store unavailable for %s %s: %s", request.method, request.path, exc)
        request.app[keys.metrics_key].store_errors.inc()
        response = error_response(request, BookingError("store_unavailable", 503))
        response.headers["Retry-After"] = "30"
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects pass through
        code = _HTTP_CODES.get(exc.status)
        if code is None:
            raise
        response = error_response(request, BookingError(code, exc.status))
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:  # the one place that must turn any bug into a page, not a trace
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(request, BookingError("internal_error", 500))
