"""Rendering the pages citizens see, and the one error middleware of both services.

`Pages` renders a theme (`gate` or `booking`) of the packaged `vaccine_queue.templates`,
with an operator's own folder searched first, in the request's language: templates get
`t` (a `Translator`: `t("key", name=value)`, `t.number(41203)`, `t.duration(seconds)`,
`t.when(epoch, zone)`), `lang` and `other_lang`, and the service's own globals.

`Problem` is what a person or an app must be told: a stable `code` whose words are the
catalogue's `err.<code>`, an HTTP status, and optionally the field at fault. The error
middleware turns a `Problem`, an `HTTPException`, whatever the service's `convert` maps
(its store being unavailable), and any unexpected exception into a friendly page for
browsers or `{"error": code, "message": text}` for apps, never a stack trace.
"""

from __future__ import annotations

import importlib.resources
import logging
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware  # the protocol web.Application accepts

from vaccine_queue.i18n import Translator, request_language, translator

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Codes for the HTTP errors aiohttp raises itself (unknown path, wrong method, ...).
HTTP_CODES: Mapping[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "body_too_large", 414: "uri_too_long",
    415: "unsupported_media_type", 431: "headers_too_large",
}

SECURITY_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class Problem(Exception):
    """Something a person or client must be told, with a stable `code` naming the text
    `err.<code>` (or `message_key`) in the catalogue."""

    def __init__(
        self, code: str, status: int = 400, *, field: str = "",
        params: Mapping[str, object] | None = None, extra: Mapping[str, object] | None = None,
        retry_after: int | None = None, message_key: str | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.field = field
        self.params: dict[str, object] = dict(params or {})
        self.extra: dict[str, object] = dict(extra or {})
        self.retry_after = retry_after
        self.message_key = message_key or f"err.{code}"

    def message(self, t: Translator) -> str:
        return t(self.message_key, **self.params)


class Pages:
    """One theme's templates, rendered in the request's language."""

    def __init__(
        self, theme: str, *, override_dir: Path | str | None = None,
        timezone: str = "Europe/Berlin", globals: Mapping[str, Any] | None = None,
        content_security_policy: str | None = None,
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir:
            # An operator's customised pages win; anything they did not copy falls back.
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        root = importlib.resources.files("vaccine_queue.templates")
        loaders.append(jinja2.FileSystemLoader(str(root.joinpath(theme))))
        # The parts both services share (`site/layout.html`, `site/site.css`), by their path
        # from the templates' root; an operator's folder may hold its own `site/` copy.
        loaders.append(jinja2.FileSystemLoader(str(root), followlinks=False))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.env.globals.update(globals or {})
        self.env.globals["zone"] = self.zone
        self._headers = dict(SECURITY_HEADERS)
        if content_security_policy:
            self._headers["Content-Security-Policy"] = content_security_policy

    def asset(self, name: str) -> str:
        """A text file of the theme (a stylesheet), found as templates are: the operator's
        folder first."""
        source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        return source

    def render(
        self, request: web.Request, name: str, context: Mapping[str, Any] | None = None, *,
        status: int = 200, headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        t = translator(request_language(request))
        body = self.env.get_template(name).render(
            t=t, lang=t.lang, other_lang=t.other, path=request.path, **(context or {}),
        )
        response = web.Response(text=body, status=status, content_type="text/html",
                                charset="utf-8", headers=self._headers)
        response.headers["Content-Language"] = t.lang
        if headers:
            response.headers.update(headers)
        return response


def json_problem(request: web.Request, problem: Problem) -> web.Response:
    """`{"error": code, "message": text in the request's language, ...}`."""
    t = translator(request_language(request))
    body: dict[str, object] = {"error": problem.code, "message": problem.message(t)}
    if problem.field:
        body["field"] = problem.field
    body.update(problem.extra)
    headers = {"Cache-Control": "no-store"}
    if problem.retry_after is not None:
        headers["Retry-After"] = str(problem.retry_after)
    return web.json_response(body, status=problem.status, headers=headers)


def error_middleware(
    pages: Pages, *, is_api: Callable[[web.Request], bool],
    convert: Callable[[web.Request, Exception], Problem | None] | None = None,
    passthrough: tuple[type[BaseException], ...] = (),
    template: str = "error.html",
    message_keys: Mapping[str, str] | None = None,
) -> Middleware:
    """Every failure becomes a `Problem` answered as a page or JSON; see the module doc.

    `convert` maps the service's own exceptions (and counts them); `passthrough` names
    exceptions that must reach aiohttp unchanged (a proxied response broken midway);
    `message_keys` gives the service's own words for codes the middleware names itself
    (`internal_error`, the HTTP errors), where `err.<code>` would not fit its visitors."""
    own_words = dict(message_keys or {})

    def problem_of(code: str, status: int) -> Problem:
        return Problem(code, status, message_key=own_words.get(code))

    def respond(request: web.Request, problem: Problem) -> web.Response:
        if is_api(request):
            return json_problem(request, problem)
        headers = {}
        if problem.retry_after is not None:
            headers["Retry-After"] = str(problem.retry_after)
        t = translator(request_language(request))
        return pages.render(request, template,
                            {"problem": problem, "text": problem.message(t)},
                            status=problem.status, headers=headers)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Problem as problem:
            return respond(request, problem)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects pass through
            response = respond(request, problem_of(HTTP_CODES.get(exc.status, "bad_request"),
                                                   exc.status))
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except passthrough:
            raise
        except Exception as exc:  # the one place that turns any failure into a page
            known = convert(request, exc) if convert is not None else None
            if known is None:
                log.exception("unexpected error serving %s %s", request.method, request.path)
                known = problem_of("internal_error", 500)
            return respond(request, known)

    return middleware


# -- the server's own limits on a request's head ----------------------------------------------
# aiohttp's parser refuses an over-long request line or header itself, before any middleware,
# with a bare English 400 ("Got more than 8190 bytes when reading ..."). So the parser is
# given room (PARSER_LIMITS, for `web.Application(handler_args=...)`) and the site's limits
# are held here, where the answer is the site's page in the visitor's language (JSON for
# apps): 414 for the address, 431 for the headers. Bodies over `client_max_size` get 413 from
# aiohttp's own check (an HTTPException the error middleware renders), or here already when
# Content-Length announces one. Only a head beyond the parser's room still gets aiohttp's 400.
MAX_URL_BYTES = 8190
MAX_HEADER_BYTES = 8190  # one header's name and value
MAX_HEADERS_TOTAL_BYTES = 32 * 1024
PARSER_ROOM_BYTES = 64 * 1024
PARSER_LIMITS: Mapping[str, int] = {"max_line_size": PARSER_ROOM_BYTES,
                                    "max_field_size": PARSER_ROOM_BYTES}


def limits_middleware(*, max_body_bytes: int) -> Middleware:
    """414/431/413 as `Problem`s; goes right after `error_middleware`, which renders them."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if len(request.raw_path) > MAX_URL_BYTES:
            raise Problem("uri_too_long", 414)
        total = 0
        for name, value in request.raw_headers:
            size = len(name) + len(value)
            total += size
            if size > MAX_HEADER_BYTES or total > MAX_HEADERS_TOTAL_BYTES:
                raise Problem("headers_too_large", 431)
        length = request.content_length
        if length is not None and length > max_body_bytes:
            raise Problem("body_too_large", 413)
        return await handler(request)

    return middleware
