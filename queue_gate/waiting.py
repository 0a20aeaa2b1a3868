"""Waiting: the page and the JSON API that tell a visitor where they stand in line.

`GET /queue/wait` is the waiting page (it joins a browser that has no ticket yet and,
once admitted, sends it on with its pass to the page it first asked for); `POST
/queue/api/join` and `GET /queue/api/status` are the same for apps. In a room that asks
for proof of work, a browser without a ticket first gets the checking page, which solves
the challenge and posts it to `POST /queue/wait` (without JavaScript: waits, then comes
back with a waited token); an app gets 428 with the challenge. A status poll is the
gate's hottest path: while the visitor waits it costs no Redis round trip, no template and
no catalogue lookup (the status holds no words but the operator's message).

`GET /queue/api/room` is the room-wide state every waiting page checks every few seconds
(mode, message, rate and a version): the same for everybody, so a reverse proxy caches it
for a second, and an operator's change reaches every page within 10 s while the personal
status keeps its long interval. Without JavaScript the page reloads itself at most every
`NOSCRIPT_REFRESH_MAX_S` seconds for the same promise.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import replace

from aiohttp import web

from queue_gate import notify
from queue_gate.admission import ROOM_CHECK_S
from queue_gate.arrival import Arrival, JoinRefused
from queue_gate.challenge import ChallengeEarly, ChallengeRejected, Solved
from queue_gate.keys import (
    arrival_key,
    clock_key,
    line_key,
    pages_key,
    passes_key,
    room_view_key,
)
from queue_gate.line import VisitorStatus
from queue_gate.passes import Passes
from queue_gate.responses import NO_STORE, safe_next, see_other, wait_url
from queue_gate.store import GateUnavailable
from vaccine_queue.contract import TokenRejected
from vaccine_queue.pages import Problem, json_problem

log = logging.getLogger(__name__)

# Longest reload interval of a waiting page without JavaScript: with the tick (0.25 s) an
# operator's change shows within 10 s. Such pages are few (the status poll's long interval
# serves the many with JavaScript); docs/benchmarks.md "Changes reach visitors" counts them.
NOSCRIPT_REFRESH_MAX_S = 8
ROOM_STATE_HEADERS = {"Cache-Control": "public, max-age=1"}

# The waiting page's notice for a refused ticket when its holder has just been given a new
# place, where the catalogue's `err.<code>` would ask them to join again.
REJOINED_NOTICES = {"session_ended": "gate.session_ended"}


async def join_now(request: web.Request,
                   solved: Solved | None = None) -> tuple[str, VisitorStatus]:
    """A new place and where it stands: (ticket token, status). Raises `JoinRefused` or
    `ChallengeUsed`."""
    ticket, token = await request.app[arrival_key].join(request, solved)
    try:
        status = await request.app[line_key].standing(ticket, just_joined=True)
    except TokenRejected as exc:
        # A ticket issued a moment ago refused: the room was reset between the two steps.
        log.warning("fresh ticket refused (%s); the room changed under the join", exc.code)
        raise GateUnavailable(exc.code) from exc
    return status.ticket_token or token, status


# --- JSON API -------------------------------------------------------------------------


async def join_api(request: web.Request) -> web.Response:
    """POST /queue/api/join: a new place in line, or the same one for a ticket holder."""
    arrival = request.app[arrival_key]
    try:
        existing = arrival.ticket(request)
    except TokenRejected:
        existing = None  # a bad ticket gets a fresh place, as the join asked
    if existing is not None:
        try:
            status = await request.app[line_key].standing(existing)
        except TokenRejected:
            pass
        else:
            token = status.ticket_token or arrival.token(request)
            assert token is not None
            return status_response(request, replace(status, ticket_token=None), ticket=token,
                                   http_status=200)
    try:
        token, status = await join_now(request, await api_solution(request))
    except ChallengeRejected as exc:
        return json_problem(request, await arrival.challenge_problem(exc))
    except JoinRefused as refused:
        return json_problem(request, arrival.refusal(refused))
    return status_response(request, replace(status, ticket_token=None), ticket=token,
                           http_status=201)


async def api_solution(request: web.Request) -> Solved | None:
    """The proof of work in a join's JSON body, `{"challenge": token, "nonce": nonce}`,
    checked; None when the room asks for none. Raises `ChallengeRejected`, or a 400
    `Problem` for a body that is not a JSON object."""
    arrival = request.app[arrival_key]
    if not await arrival.challenge_bits():
        return None  # the body is not read: apps that send none keep working
    raw = await request.read()
    body: object = {}
    if raw.strip():
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
    if not isinstance(body, dict):
        raise Problem("invalid_join_body", 400)
    return await arrival.solution(body.get("challenge"), body.get("nonce"))


async def status_api(request: web.Request) -> web.Response:
    """GET /queue/api/status: place, estimate and, once admitted, the pass."""
    arrival = request.app[arrival_key]
    try:
        ticket = arrival.ticket(request)
        if ticket is None:
            return json_problem(request, Problem("ticket_missing", 401))
        status = await request.app[line_key].standing(ticket)
    except TokenRejected as exc:
        response = json_problem(request, Problem(exc.code, 401))
        arrival.clear_cookie(response)
        return response
    return status_response(request, status)


async def room_api(request: web.Request) -> web.Response:
    """GET /queue/api/room: the room-wide state from this process's snapshot (no Redis
    round trip, no cookie read), cacheable for a second; 304 for a matching If-None-Match."""
    view = request.app[room_view_key]
    state = view.room_state
    if state is None:
        await view.refresh()  # right after start, before the ticker's first tick
        state = view.room_state
        assert state is not None
    etag = f'"{state.version}"'
    headers = {**ROOM_STATE_HEADERS, "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=state.body, headers=headers, content_type="application/json",
                        charset="utf-8")


@functools.lru_cache(maxsize=64)
def _json_text(value: str | None) -> str:
    return json.dumps(value)


def status_body(status: VisitorStatus) -> bytes:
    """`as_json()` serialised; the common case (a waiting visitor's poll, the hottest path
    of the gate) written out directly, which costs a third of `json.dumps` of the dict."""
    if (status.opens_at is not None or status.ticket_token is not None
            or status.pass_token is not None or status.next_change is not None):
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


def status_response(request: web.Request, status: VisitorStatus, *,
                    ticket: str | None = None, http_status: int = 200) -> web.Response:
    """The status as JSON, with the (new) ticket and the pass in their cookies."""
    if ticket is not None:
        body = json.dumps({"ticket": ticket, **status.as_json()}).encode()
    else:
        body = status_body(status)
    response = web.Response(body=body, status=http_status, headers=NO_STORE,
                            content_type="application/json", charset="utf-8")
    ticket = ticket or status.ticket_token
    if ticket is not None:
        request.app[arrival_key].set_cookie(response, ticket)
    if status.pass_token is not None:
        set_pass_cookie(request.app[passes_key], response, status)
    return response


def set_pass_cookie(passes: Passes, response: web.StreamResponse,
                    status: VisitorStatus) -> None:
    assert status.pass_token is not None
    assert status.pass_expires_at is not None
    passes.set_cookie(response, status.pass_token, status.pass_expires_at)


# --- The waiting page -----------------------------------------------------------------


async def waiting_page(request: web.Request) -> web.Response:
    """GET /queue/wait: the waiting page. Joins the visitor if they have no ticket yet."""
    app = request.app
    arrival = app[arrival_key]
    next_path = safe_next(request.query.get("next"))
    notice = ""  # the catalogue key of what happened to the ticket they brought
    new_token: str | None = None
    try:
        ticket = arrival.ticket(request)
        status = await app[line_key].standing(ticket) if ticket is not None else None
    except TokenRejected as exc:
        status, notice = None, REJOINED_NOTICES.get(exc.code, f"err.{exc.code}")
    if status is None:
        try:
            solved: Solved | None = None
            if await arrival.challenge_bits():
                waited = request.query.get("waited")
                if waited is None:
                    return await challenge_page(request, arrival, next_path, notice=notice)
                solved = await waited_solution(request, waited)
            new_token, status = await join_now(request, solved)
        except ChallengeEarly:
            return await challenge_page(request, arrival, next_path, waited=request.query["waited"])
        except ChallengeRejected as exc:
            return await challenge_page(request, arrival, next_path, notice=f"err.{exc.code}",
                                  status=428)
        except JoinRefused as refused:
            return refused_page(request, arrival, refused)
    new_token = status.ticket_token or new_token
    if status.state == "admitted":
        response = see_other(next_path)
        set_pass_cookie(app[passes_key], response, status)
    else:
        response = app[pages_key].render(request, "waiting.html", {
            "status": status,
            "notice": notice,
            "next_path": next_path,
            "refresh_s": min(max(round(status.poll_after_s), 1), NOSCRIPT_REFRESH_MAX_S),
            "progress_percent": int(status.progress * 100),
            # Shown as "updated at" on a page without JavaScript (the script keeps it current).
            "rendered_at": app[clock_key](),
            "next_change": status.next_change,
            "room_check_s": ROOM_CHECK_S,
            # The version this page shows: a change made before the first check counts.
            "room_version": state.version if (state := app[room_view_key].room_state) else None,
            "notify": notify.page_context(request),
        })
    if new_token is not None:
        arrival.set_cookie(response, new_token)
    return response


async def waited_solution(request: web.Request, token: str) -> Solved:
    """A browser without JavaScript back after its wait. Raises `ChallengeRejected`."""
    arrival = request.app[arrival_key]
    try:
        return arrival.challenges.verify_waited(token)
    except ChallengeEarly:
        raise  # not counted: the page shows the rest of the wait
    except ChallengeRejected as exc:
        arrival.challenge_refused(exc)


async def solved_join(request: web.Request) -> web.Response:
    """POST /queue/wait: the checking page's solved challenge (form fields `challenge`
    and `nonce`). Joins, then sends the browser to the waiting page (303), or shows the
    checking page again with a fresh challenge when the solution is refused."""
    arrival = request.app[arrival_key]
    next_path = safe_next(request.query.get("next"))
    try:
        has_ticket = arrival.ticket(request) is not None
    except TokenRejected:
        has_ticket = False
    if has_ticket:
        return see_other(wait_url(next_path))  # a second submit: the first one joined
    form = await request.post()
    try:
        new_token, _ = await join_now(
            request, await arrival.solution(form.get("challenge"), form.get("nonce")))
    except ChallengeRejected as exc:
        return await challenge_page(request, arrival, next_path, notice=f"err.{exc.code}",
                              status=428)
    except JoinRefused as refused:
        return refused_page(request, arrival, refused)
    response = see_other(wait_url(next_path))
    arrival.set_cookie(response, new_token)
    return response


async def challenge_page(request: web.Request, arrival: Arrival, next_path: str, *,
                   notice: str = "", waited: str | None = None,
                   status: int = 200) -> web.Response:
    """The checking page: the browser solves a fresh challenge in a worker and posts it;
    without JavaScript it waits and comes back with a waited token (`waited`: the one it
    brought too early, kept with the rest of its wait)."""
    challenges = arrival.challenges
    bits = await arrival.challenge_bits()
    if waited is None:
        waited_token = challenges.issue_waited().token
        wait_s = challenges.wait_s
    else:
        waited_token = waited
        wait_s = max(challenges.waited_not_before(waited) - int(request.app[clock_key]()), 1)
    return request.app[pages_key].render(request, "challenge.html", {
        "challenge": challenges.issue(max(bits, 1)).as_json(),
        "notice": notice,
        "next_path": next_path,
        "wait_s": wait_s,
        "waited_url": f"{wait_url(next_path)}&waited={waited_token}",
        "action": wait_url(next_path),
    }, status=status, headers=NO_STORE)


def refused_page(request: web.Request, arrival: Arrival,
                 refused: JoinRefused) -> web.Response:
    """Too many joins (or draws) from this connection (429), or the room is closed (a
    state, not an error: 200, and the page looks again every minute)."""
    pages = request.app[pages_key]
    if refused.reason == "draw_limited":
        return pages.render(request, "limited.html",
                            {"minutes": refused.retry_after_minutes, "draws": True},
                            status=429, headers={"Retry-After": str(refused.retry_after_s)})
    if refused.reason == "limited":
        return pages.render(request, "limited.html",
                            {"minutes": refused.retry_after_minutes}, status=429,
                            headers={"Retry-After": str(refused.retry_after_s)})
    return pages.render(request, "closed.html", {
        "message": arrival.closed_message(),
        "next_change": request.app[room_view_key].next_change,
        "rendered_at": request.app[clock_key]()}, headers={"Refresh": "60"})
