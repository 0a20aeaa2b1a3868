"""Forwarding admitted visitors to the booking backend, and turning the others back.

Every path outside `/queue/` arrives here. A request with a valid pass is streamed to the
backend with its method, body, headers and status preserved. A request without one is sent
to the waiting page (browsers) or answered with 401 JSON (apps).
"""

from __future__ import annotations

import logging
import time

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict

from queue_gate import agents
from queue_gate.addresses import browser_fingerprint
from queue_gate.health import BackendBusy, Call
from queue_gate.keys import (
    address_policy_key,
    backend_health_key,
    backend_session_key,
    clock_key,
    metrics_key,
    rooms_key,
    settings_key,
)
from queue_gate.responses import see_other, wait_url, wants_html
from queue_gate.rooms import Room, plain_path
from queue_gate.store import GateUnavailable
from vaccine_queue.contract import (
    CAPACITY_HEADER,
    END_SESSION_HEADER,
    PASS_COOKIE,
    PASS_HEADER,
    AdmissionPass,
    PassForeign,
    PassShared,
    SessionEnded,
    TokenRejected,
)
from vaccine_queue.pages import Problem, json_problem

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection, not to the message.
HOP_BY_HOP = frozenset(
    h.lower() for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection",
    )
)
CHUNK = 64 * 1024
# How long a visitor is asked to wait when the backend does not answer.
BACKEND_RETRY_S = 30
# How often a visitor holding a pass looks again while the booking system recovers.
RECOVERING_RETRY_S = 10
# Where an app without a pass takes its place in line.
JOIN_PATH = "/queue/api/join"


class UpstreamBroken(Exception):
    """The backend failed mid-response; aiohttp must drop the connection, not answer again."""


class PassOtherRoom(TokenRejected):
    """A valid pass of another room: it opens that room's routes only (and is kept)."""

    code = "pass_other_room"


async def check_pass(request: web.Request, room: Room) -> AdmissionPass | None:
    """The request's valid pass for `room`, or None. Raises `TokenRejected` for a bad, ended
    or too widely shared one, `PassOtherRoom` for one of another room served here
    (`PassForeign` for a room not served here). One Redis round trip (the record and the
    browser count). A call-centre agent's pass is checked by its own rules
    (`agents.check`)."""
    token = request.headers.get(PASS_HEADER) or request.cookies.get(PASS_COOKIE)
    if not token:
        return None
    app = request.app
    metrics = app[metrics_key]
    try:
        admission = room.signer.load_any_pass(token)
        if admission.room != room.name:
            if app[rooms_key].get(admission.room) is None:
                raise PassForeign()
            raise PassOtherRoom()
        if agents.is_agent_pass(admission):
            await agents.check(request, admission, room)
            return admission
        policy = app[address_policy_key]
        fingerprint = browser_fingerprint(request, policy.client_address(request))
        try:
            outcome, _ = await room.store.check_pass(admission.ticket_id, fingerprint,
                                                     admission.expires_at)
        except GateUnavailable:
            # Redis is briefly away: the signature and expiry were checked, let the admitted
            # visitor finish rather than break their booking; only an early end is missed.
            metrics.redis_errors.labels(room.name, "pass_check").inc()
            return admission
        if outcome == "ended":
            raise SessionEnded()
        if outcome == "shared":
            raise PassShared()
    except TokenRejected as exc:
        metrics.rejections.labels(room.name, exc.code).inc()
        raise
    return admission


async def forward(request: web.Request) -> web.StreamResponse:
    """Any method, any path outside /queue/: the route table names its room and action.
    queue: proxy with the room's pass, else to the room's line. bypass: proxied without a
    pass, and without asking Redis. block: 403."""
    rooms = request.app[rooms_key]
    match = rooms.resolve(request)
    room = match.room
    if room is None:  # no route, and QUEUE_GATE_DEFAULT_ROOM=none: straight through
        return await proxy_to_backend(request, None, rooms.first)
    if match.action == "block":
        return blocked(request)
    # A bypass route is taken for a plain path only; any other queues in the route's room.
    if match.action == "bypass" and plain_path(request.rel_url.raw_path):
        return await proxy_to_backend(request, None, room)
    try:
        admission = await check_pass(request, room)
    except agents.AgentPassRefused as exc:
        return agents.refused(request, exc.code)
    except PassOtherRoom as exc:
        return turn_back(request, exc.code)  # its pass stays good for its own room
    except TokenRejected as exc:
        return turn_back(request, exc.code, clear_pass=True)
    if admission is None:
        return turn_back(request, "pass_required")
    return await proxy_to_backend(request, admission, room)


def blocked(request: web.Request) -> web.Response:
    """A route an operator blocked: 403, the gate's page for browsers, JSON for apps."""
    problem = Problem("blocked", 403)
    if wants_html(request):
        raise problem  # the error middleware renders the gate's error page
    return json_problem(request, problem)


def turn_back(request: web.Request, code: str, *, clear_pass: bool = False) -> web.Response:
    """Browsers to the waiting page, apps a 401 naming why and where to join."""
    response: web.Response
    if wants_html(request):
        # 303: after a POST the browser follows with a GET to the waiting page.
        response = see_other(wait_url(request.path_qs))
    else:
        response = json_problem(request, Problem(code, 401, extra={"join": JOIN_PATH}))
    if clear_pass:
        response.del_cookie(PASS_COOKIE, path="/")
    return response


def upstream_headers(request: web.Request) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    # Headers named in Connection are hop-by-hop too.
    named = {h.strip().lower() for h in request.headers.get("Connection", "").split(",")}
    for name, value in request.headers.items():
        if name.lower() in HOP_BY_HOP or name.lower() in named or name.lower() == "host":
            continue
        # Content-Length stays: the body is streamed through unchanged, and a backend may
        # refuse chunked uploads.
        headers.add(name, value)
    peer = request.remote or ""
    previous = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    return headers


async def proxy_to_backend(request: web.Request, admission: AdmissionPass | None,
                           room: Room) -> web.StreamResponse:
    """Forward through one of this process's bounded backend connections (waited for at
    most `backend_pool_wait_s`, else a 503 with Retry-After). In adaptive mode, while the
    room's decision says the backend answers nothing, or when it answers this request
    with nothing, the visitor is told the booking system is recovering (their pass stays
    good) rather than shown an error."""
    app = request.app
    label = room.name
    snapshot = room.view.snapshot
    adaptive = snapshot is not None and snapshot.config.rate_mode == "adaptive"
    if adaptive and snapshot is not None and snapshot.backend_down:
        app[metrics_key].proxy_errors.labels(label, "recovering").inc()
        return backend_recovering(request)
    health = app[backend_health_key]
    try:
        async with health.slot() as call:
            app[metrics_key].backend_in_flight.labels(label).set(health.in_flight)
            return await exchange(request, admission, call, room)
    except BackendBusy:
        app[metrics_key].proxy_errors.labels(label, "busy").inc()
        return backend_failed(request, 503)
    except NoAnswer as silent:
        return backend_recovering(request) if adaptive else backend_failed(request,
                                                                           silent.status)
    finally:
        app[metrics_key].backend_in_flight.labels(label).set(health.in_flight)


class NoAnswer(Exception):
    """The backend sent no response headers: 504 (timed out) or 502 (refused, cut)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def exchange(request: web.Request, admission: AdmissionPass | None,
                   call: Call, room: Room) -> web.StreamResponse:
    """One request to the backend and its response streamed back (`admission` None: a
    bypass path, whose end-session header ends nothing)."""
    app = request.app
    settings = app[settings_key]
    metrics = app[metrics_key]
    session = app[backend_session_key]
    url = settings.backend_url.rstrip("/") + request.rel_url.raw_path_qs
    body = request.content if request.body_exists else None
    started = time.perf_counter()
    response: web.StreamResponse | None = None
    try:
        async with session.request(
            request.method, url, headers=upstream_headers(request), data=body,
            allow_redirects=False,
        ) as upstream:
            call.answered(upstream.status, upstream.headers.get(CAPACITY_HEADER))
            status_class = f"{upstream.status // 100}xx"
            metrics.proxy_duration.labels(room.name, status_class).observe(
                time.perf_counter() - started)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                    continue
                if name.lower() == END_SESSION_HEADER.lower():
                    continue
                response.headers.add(name, value)
            # A booking ends a visitor's session, not an agent's shift: the agent books for
            # the next caller with the same pass.
            if admission is not None and upstream.headers.get(END_SESSION_HEADER) and \
                    not agents.is_agent_pass(admission):
                await end_session(request, admission, response, room)
            if upstream.content_length is not None and not upstream.headers.get(
                    hdrs.TRANSFER_ENCODING):
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
    except (TimeoutError, aiohttp.ClientError) as exc:
        if visitor_gone(request):
            # The visitor closed their connection (aiohttp raises ClientConnectionResetError,
            # a ClientError, when writing to it; an upload cut short fails the same way):
            # not the backend's failure, so neither counted nor fed to the health window.
            log.debug("visitor went away during %s %s: %s", request.method, request.path,
                      exc.__class__.__name__)
            return response if response is not None else web.Response(status=499)
        reason = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
        call.no_answer()  # nothing if the response had begun
        metrics.proxy_errors.labels(room.name, reason).inc()
        log.warning("backend %s for %s %s: %s", reason, request.method, request.path,
                    exc.__class__.__name__)
        if response is not None and response.prepared:
            # Headers are gone already: all we can do is cut the connection short.
            raise UpstreamBroken() from exc
        raise NoAnswer(504 if reason == "timeout" else 502) from exc


def visitor_gone(request: web.Request) -> bool:
    """Whether the visitor's own connection is closed or closing."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def end_session(request: web.Request, admission: AdmissionPass,
                      response: web.StreamResponse, bundle: Room) -> None:
    """The backend is done with this visitor: end the pass so the next one gets in."""
    app = request.app
    room = bundle.name
    try:
        if await bundle.store.end_pass(admission.ticket_id):
            app[metrics_key].passes_ended.labels(room).inc()
            snapshot = bundle.view.snapshot
            if snapshot is not None:
                # Issued at expiry minus the session length (as configured now).
                issued = admission.expires_at - snapshot.config.session_minutes * 60
                app[metrics_key].session_duration.labels(room).observe(
                    max(app[clock_key]() - issued, 0.0))
    except GateUnavailable:
        app[metrics_key].redis_errors.labels(room, "end_pass").inc()
        return
    response.del_cookie(PASS_COOKIE, path="/")


def backend_recovering(request: web.Request) -> web.Response:
    """Adaptive mode, the backend answers nothing: admissions are paused and the visitor
    keeps their pass; a page that tries again by itself, or JSON, 503 with Retry-After."""
    problem = Problem("backend_recovering", 503, retry_after=RECOVERING_RETRY_S,
                      message_key="gate.recovering")
    if wants_html(request):
        raise problem  # the error middleware renders the gate's page (it reloads itself)
    return json_problem(request, problem)


def backend_failed(request: web.Request, status: int) -> web.Response:
    """The booking system did not answer: a page that tries again by itself, or JSON."""
    problem = Problem("backend_unavailable", status, retry_after=BACKEND_RETRY_S,
                      message_key="gate.backend_down")
    if wants_html(request):
        raise problem  # the error middleware renders the gate's error page
    return json_problem(request, problem)


# The client session's connection limit keeps the gate from opening more connections to
# the backend than it can take; one timeout covers the whole exchange.
def backend_session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=timeout_s),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )

