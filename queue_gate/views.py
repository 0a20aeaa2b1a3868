"""What a visitor meets: joining, the waiting page, the status API and collecting the pass.

The path: arrival (any page, no pass) -> `/queue/wait` (a ticket is issued) -> polls of
`/queue/api/status` or meta refreshes -> admitted (the pass is set) -> back to the page they
first asked for, which `proxy.py` forwards to the booking backend.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import zoneinfo
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from aiohttp import web

from queue_gate.keys import (
    address_policy_key,
    clock_key,
    metrics_key,
    pages_key,
    room_view_key,
    settings_key,
    signer_key,
    store_key,
)
from queue_gate.store import GateUnavailable
from queue_gate.tickets import (
    PASS_COOKIE,
    TICKET_COOKIE,
    SessionEnded,
    Ticket,
    TicketSigner,
    TicketStale,
    TokenRejected,
)

log = logging.getLogger(__name__)

WAIT_PATH = "/queue/wait"
MAX_NEXT_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class VisitorStatus:
    state: str  # prequeue | waiting | admitted | paused | closed
    position: int | None  # None in the pre-queue: places are drawn at opening
    estimated_wait_s: float | None
    poll_after_s: float
    message: str
    progress: float
    pass_token: str | None = None
    pass_expires_at: int | None = None
    # A ticket signed again (a pre-queue ticket that drew its number): replaces the old one.
    ticket_token: str | None = None
    opens_at: float | None = None
    returning: bool = False  # passed over while away, now first in line again

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "state": self.state,
            "position": self.position,
            "estimated_wait_s": None if self.estimated_wait_s is None
            else round(self.estimated_wait_s),
            "poll_after_s": self.poll_after_s,
            "message": self.message or None,
            "progress": round(self.progress, 3),
        }
        if self.opens_at is not None:
            body["opens_at"] = dt.datetime.fromtimestamp(self.opens_at, dt.UTC).isoformat()
        if self.ticket_token is not None:
            body["ticket"] = self.ticket_token
        if self.pass_token is not None:
            body["pass"] = self.pass_token
            body["pass_expires_at"] = self.pass_expires_at
        return body


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status,
                             headers={"Cache-Control": "no-store"})


def safe_next(raw: str | None) -> str:
    """Only a path on this site: no open redirect, and never back into the queue itself."""
    if (
        not raw
        or len(raw) > MAX_NEXT_LENGTH
        or not raw.startswith("/")
        or raw.startswith(("//", "/\\", "/queue/"))
        or any(ch in raw for ch in "\r\n\t\\")
    ):
        return "/"
    return raw


def see_other(location: str) -> web.Response:
    """A 303 we can still add cookies to (aiohttp wants HTTPException raised, not returned)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def wait_url(next_path: str) -> str:
    return f"{WAIT_PATH}?next={quote(next_path, safe='/')}"


def ticket_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get(TICKET_COOKIE) or None


def load_ticket(request: web.Request) -> Ticket | None:
    """The visitor's ticket, None if they have none. Raises `TokenRejected` for a bad one."""
    token = ticket_token(request)
    if token is None:
        return None
    app = request.app
    try:
        ticket = app[signer_key].load_ticket(token)
    except TokenRejected as exc:
        app[metrics_key].rejections.labels(app[settings_key].room, exc.code).inc()
        raise
    snapshot = app[room_view_key].snapshot
    if snapshot is not None and ticket.epoch != snapshot.epoch:
        app[metrics_key].rejections.labels(app[settings_key].room, TicketStale.code).inc()
        raise TicketStale()
    return ticket


class JoinRefused(Exception):
    """The room is closed, or the visitor's network address used up its joins."""

    def __init__(self, reason: str, retry_after_s: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


async def issue_ticket(request: web.Request) -> tuple[Ticket, str]:
    """Give an arriving visitor the next place in line, or a pre-queue entry before opening.
    Raises `JoinRefused`."""
    app = request.app
    room = app[settings_key].room
    policy = app[address_policy_key]
    address_key = policy.join_limit_key(policy.client_address(request))
    ticket_id = TicketSigner.new_ticket_id()
    result = await app[store_key].join(ticket_id, address=address_key)
    if result.mode in ("closed", "limited"):
        metric = app[metrics_key].joins_refused
        metric.labels(room, "room_closed" if result.mode == "closed" else "address_limit").inc()
        raise JoinRefused(result.mode, result.retry_after_s)
    app[metrics_key].tickets_issued.labels(room).inc()
    draw = int(result.opens_at) if result.opens_at is not None else 0
    return app[signer_key].issue_ticket(result.epoch, result.number, result.frontier,
                                        ticket_id=ticket_id, draw=draw)


async def join_now(request: web.Request) -> tuple[str, VisitorStatus]:
    """A new place and where it stands: (ticket token, status). Raises `JoinRefused`."""
    ticket, token = await issue_ticket(request)
    try:
        status = await visitor_status(request.app, ticket, just_joined=True)
    except TokenRejected as exc:
        # A ticket issued a moment ago refused: the room was reset between the two steps.
        log.warning("fresh ticket refused (%s); the room changed under the join", exc.code)
        raise GateUnavailable(exc.code) from exc
    return status.ticket_token or token, status


async def ensure_snapshot(app: web.Application) -> None:
    """Normally the ticker has one already; right after start, tick once ourselves."""
    if app[room_view_key].snapshot is None:
        await app[room_view_key].refresh()


async def visitor_status(app: web.Application, ticket: Ticket, *,
                         just_joined: bool = False) -> VisitorStatus:
    """Where the ticket stands. Costs no Redis round trip unless it is the ticket's turn
    (or a pre-queue ticket's first poll after the draw)."""
    await ensure_snapshot(app)
    view = app[room_view_key]
    snapshot = view.snapshot
    assert snapshot is not None
    reissued: str | None = None
    if ticket.prequeued:
        # Our own clock, not the snapshot's: the snapshot may be from just before opening.
        if snapshot.config.opens_at == ticket.draw and app[clock_key]() < ticket.draw:
            return prequeue_status(app, ticket.draw, snapshot.now)
        drawn = await app[store_key].draw_place(ticket.ticket_id, ticket.draw)
        if drawn.outcome == "prequeue":
            return prequeue_status(app, ticket.draw, snapshot.now)
        if drawn.outcome == "stale":
            raise TicketStale()
        ticket, reissued = app[signer_key].issue_ticket(
            ticket.epoch, drawn.number, drawn.base, ticket_id=ticket.ticket_id)
    view.mark_seen(ticket.number)
    config = snapshot.config
    # A join's answer is fresher than the snapshot (in passthrough it admits at once).
    frontier = max(snapshot.frontier, ticket.frontier_at_join if just_joined else 0)
    returning = False
    if ticket.number <= frontier:
        admitted = await collect_pass(app, ticket)
        if admitted.state == "admitted":
            return replace(admitted, ticket_token=reissued)
        returning = admitted.returning
        position = admitted.position or 1
    else:
        position = ticket.number - snapshot.frontier
    estimate = view.estimate(position)
    span = ticket.number - ticket.frontier_at_join
    progress = 1.0 if span <= 0 or returning else min(max(1 - position / span, 0.0), 1.0)
    state = {"paused": "paused", "closed": "closed"}.get(config.mode, "waiting")
    return VisitorStatus(
        state=state,
        position=max(position, 1),
        estimated_wait_s=estimate.wait_s,
        poll_after_s=estimate.poll_after_s,
        message=config.message,
        progress=progress,
        ticket_token=reissued,
        returning=returning,
    )


def prequeue_status(app: web.Application, opens_at: float, now: float) -> VisitorStatus:
    view = app[room_view_key]
    snapshot = view.snapshot
    assert snapshot is not None
    return VisitorStatus(
        state="prequeue",
        position=None,
        estimated_wait_s=None,
        poll_after_s=view.poll_after(max(opens_at - now, 0.0)),
        message=snapshot.config.message,
        progress=0.0,
        opens_at=opens_at,
    )


async def collect_pass(app: web.Application, ticket: Ticket) -> VisitorStatus:
    """The frontier has reached the ticket: issue (or re-issue) its one pass."""
    room = app[settings_key].room
    result = await app[store_key].issue_pass(ticket.ticket_id, ticket.number, ticket.epoch)
    if result.outcome == "stale":
        raise TicketStale()
    if result.outcome == "spent":
        app[metrics_key].rejections.labels(room, SessionEnded.code).inc()
        raise SessionEnded()
    if result.outcome in ("waiting", "requeued", "full"):
        # requeued: passed over while away; back now, and first in line among returners.
        # full: admitted, but every session allowed is in use; the next free one is theirs
        # or another admitted visitor's, whoever asks first.
        # waiting: our snapshot ran ahead of Redis (it was reset); wait at the front.
        return VisitorStatus(state="waiting", position=max(result.value, 1)
                             if result.outcome == "requeued" else 1,
                             estimated_wait_s=None, poll_after_s=0.0, message="",
                             progress=1.0, returning=result.outcome == "requeued")
    if result.outcome == "issued":
        app[metrics_key].passes_issued.labels(room).inc()
        app[metrics_key].time_waited.labels(room).observe(
            max(app[clock_key]() - ticket.issued_at, 0.0))
    token = app[signer_key].issue_pass(ticket, result.value)
    return VisitorStatus(
        state="admitted", position=0, estimated_wait_s=0.0, poll_after_s=0.0,
        message="", progress=1.0, pass_token=token, pass_expires_at=result.value,
    )


def set_ticket_cookie(app: web.Application, response: web.StreamResponse, token: str) -> None:
    settings = app[settings_key]
    # Path /queue: the ticket is only ever read by the gate, never sent on to the backend.
    response.set_cookie(TICKET_COOKIE, token, max_age=settings.ticket_max_age_s, path="/queue",
                        httponly=True, samesite="Lax", secure=settings.cookie_secure)


def set_pass_cookie(app: web.Application, response: web.StreamResponse,
                    status: VisitorStatus) -> None:
    assert status.pass_token is not None
    assert status.pass_expires_at is not None
    max_age = max(int(status.pass_expires_at - app[clock_key]()), 1)
    response.set_cookie(PASS_COOKIE, status.pass_token, max_age=max_age, path="/",
                        httponly=True, samesite="Lax", secure=app[settings_key].cookie_secure)


def clear_ticket_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(TICKET_COOKIE, path="/queue")


# --- JSON API -------------------------------------------------------------------------


async def api_join(request: web.Request) -> web.Response:
    """POST /queue/api/join: a new place in line, or the same one for a ticket holder."""
    app = request.app
    try:
        existing = load_ticket(request)
    except TokenRejected:
        existing = None  # a bad ticket gets a fresh place, as the join asked
    if existing is not None:
        try:
            status = await visitor_status(app, existing)
        except TokenRejected:
            existing = None
        else:
            token = status.ticket_token or ticket_token(request)
            assert token is not None
            return status_response(app, replace(status, ticket_token=None), ticket=token,
                                   http_status=200)
    try:
        token, status = await join_now(request)
    except JoinRefused as refused:
        return join_refused_json(app, refused)
    return status_response(app, replace(status, ticket_token=None),
                           ticket=token, http_status=201)


def join_refused_json(app: web.Application, refused: JoinRefused) -> web.Response:
    if refused.reason == "limited":
        response = json_error(
            429, "too_many_joins",
            "Very many people have joined from this internet connection recently. "
            f"Please try again in {max(refused.retry_after_s // 60, 1)} minutes.")
        response.headers["Retry-After"] = str(refused.retry_after_s)
        return response
    snapshot = app[room_view_key].snapshot
    message = snapshot.config.message if snapshot is not None else ""
    return json_error(409, "room_closed",
                      message or "The waiting room is closed: no new places right now.",
                      state="closed")


async def api_status(request: web.Request) -> web.Response:
    """GET /queue/api/status: place, estimate and, once admitted, the pass."""
    app = request.app
    try:
        ticket = load_ticket(request)
        if ticket is None:
            return json_error(401, "ticket_missing",
                              "No queue ticket: send it as 'Authorization: Bearer <ticket>' "
                              "or join first with POST /queue/api/join.")
        status = await visitor_status(app, ticket)
    except TokenRejected as exc:
        response = json_error(401, exc.code, exc.message)
        clear_ticket_cookie(response)
        return response
    return status_response(app, status)


@functools.lru_cache(maxsize=64)
def _json_text(value: str | None) -> str:
    return json.dumps(value)


def status_body(status: VisitorStatus) -> bytes:
    """`as_json()` serialised; the common case (a waiting visitor's poll, the hottest path
    of the gate) written out directly, which costs a third of `json.dumps` of the dict."""
    if (status.opens_at is not None or status.ticket_token is not None
            or status.pass_token is not None):
        return json.dumps(status.as_json()).encode()
    wait = status.estimated_wait_s
    position = status.position
    return (
        f'{{"state": "{status.state}", '
        f'"position": {"null" if position is None else int(position)}, '
        f'"estimated_wait_s": {"null" if wait is None else round(wait)}, '
        f'"poll_after_s": {float(status.poll_after_s)!r}, '
        f'"message": {_json_text(status.message or None)}, '
        f'"progress": {round(status.progress, 3)!r}}}'
    ).encode()


_NO_STORE = {"Cache-Control": "no-store"}


def status_response(app: web.Application, status: VisitorStatus, *, ticket: str | None = None,
                    http_status: int = 200) -> web.Response:
    if ticket is not None:
        body = json.dumps({"ticket": ticket, **status.as_json()}).encode()
    else:
        body = status_body(status)
    response = web.Response(body=body, status=http_status, headers=_NO_STORE,
                            content_type="application/json", charset="utf-8")
    ticket = ticket or status.ticket_token
    if ticket is not None:
        set_ticket_cookie(app, response, ticket)
    if status.pass_token is not None:
        set_pass_cookie(app, response, status)
    return response


# --- HTML -----------------------------------------------------------------------------


async def waiting_page(request: web.Request) -> web.Response:
    """GET /queue/wait: the waiting page. Joins the visitor if they have no ticket yet."""
    app = request.app
    next_path = safe_next(request.query.get("next"))
    notice = ""
    new_token: str | None = None
    try:
        ticket = load_ticket(request)
        status = await visitor_status(app, ticket) if ticket is not None else None
    except TokenRejected as exc:
        status, notice = None, exc.message
    if status is None:
        try:
            new_token, status = await join_now(request)
        except JoinRefused as refused:
            return join_refused_page(request, refused)
    new_token = status.ticket_token or new_token
    if status.state == "admitted":
        response = see_other(next_path)
        set_pass_cookie(app, response, status)
    else:
        response = render_waiting(request, status, next_path, notice)
    if new_token is not None:
        set_ticket_cookie(app, response, new_token)
    return response


def join_refused_page(request: web.Request, refused: JoinRefused) -> web.Response:
    if refused.reason == "limited":
        minutes = max(refused.retry_after_s // 60, 1)
        return request.app[pages_key].render(
            request, "limited.html", {"minutes": minutes}, status=429,
            headers={"Retry-After": str(refused.retry_after_s)})
    return closed_page(request)


def render_waiting(request: web.Request, status: VisitorStatus, next_path: str,
                   notice: str) -> web.Response:
    app = request.app
    refresh_s = max(round(status.poll_after_s), 1)
    opens_at = None
    if status.opens_at is not None:
        zone = zoneinfo.ZoneInfo(app[settings_key].timezone)
        opens_at = dt.datetime.fromtimestamp(status.opens_at, zone)
    return app[pages_key].render(
        request,
        "waiting.html",
        {
            "status": status,
            "notice": notice,
            "next_path": next_path,
            "refresh_s": refresh_s,
            "progress_percent": int(status.progress * 100),
            "opens_at": opens_at,
        },
    )


def closed_page(request: web.Request) -> web.Response:
    snapshot = request.app[room_view_key].snapshot
    message = snapshot.config.message if snapshot is not None else ""
    # A closed room is a state, not an error: the page says so with 200.
    return request.app[pages_key].render(request, "closed.html", {"message": message},
                                         headers={"Refresh": "60"})


async def health(request: web.Request) -> web.Response:
    """GET /queue/healthz: for load balancers; 503 when this process's view is stale."""
    fresh = request.app[room_view_key].fresh
    return web.json_response({"ok": fresh}, status=200 if fresh else 503)
