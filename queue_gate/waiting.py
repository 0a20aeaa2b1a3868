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
from queue_gate.keys import clock_key, metrics_key, pages_key, rooms_key, settings_key
from queue_gate.line import VisitorStatus
from queue_gate.passes import Passes
from queue_gate.responses import NO_STORE, safe_next, see_other, wait_url
from queue_gate.rooms import Room, plain_path
from queue_gate.store import GateUnavailable
from vaccine_queue.contract import TicketForeign, TokenRejected
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
# The room-wide state of a room: `?room=<name>` names it.
ROOM_API_PATH = "/queue/api/room"


# --- Which room --------------------------------------------------------------------------


async def held_room(request: web.Request) -> tuple[str, Room | None] | None:
    """The room the visitor's ticket names: None without a ticket; (name, None) for a room
    deleted for good (its line is closed). Raises `TokenRejected` for a bad ticket, or
    `TicketForeign` for a room that never existed here (counted)."""
    token = Arrival.token(request)
    if token is None:
        return None
    rooms = request.app[rooms_key]
    try:
        ticket = rooms.first.signer.load_any_ticket(token)
        room = rooms.get(ticket.room)
        if room is None and not await rooms.ended(ticket.room):
            raise TicketForeign()
    except TokenRejected as exc:
        request.app[metrics_key].rejections.labels(rooms.first.name, exc.code).inc()
        raise
    return ticket.room, room


def path_room(request: web.Request, next_path: str) -> Room | None:
    """The room whose line covers `next_path` on the request's host; None when the path
    needs no place in line (QUEUE_GATE_DEFAULT_ROOM=none). Raises a 403 `Problem` for a
    blocked path."""
    match = request.app[rooms_key].resolve(request, next_path)
    if match.action == "block":
        raise Problem("blocked", 403)
    return match.room


async def json_body(request: web.Request) -> dict[str, object] | None:
    """The request's JSON object, None when it sent none (or something else)."""
    if not request.body_exists:
        return None
    raw = await request.read()  # aiohttp keeps it: a second read gives the same bytes
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def join_room(request: web.Request) -> Room:
    """A join's room: `{"room": name}` in the JSON body, else the room whose line covers
    `next` (query, or the body) on the request's host. Raises a 404 `Problem` for an
    unknown room (and a path no room covers), 403 for a blocked path."""
    rooms = request.app[rooms_key]
    body = await json_body(request) or {}
    name = body.get("room")
    if name is not None:
        room = rooms.get(name) if isinstance(name, str) else None
        if room is None:
            raise Problem("room_not_found", 404)
        return room
    raw_next = request.query.get("next") or body.get("next")
    room = path_room(request, safe_next(raw_next if isinstance(raw_next, str) else None))
    if room is None:
        raise Problem("room_not_found", 404)
    return room


def ended_status(request: web.Request, name: str) -> VisitorStatus:
    """A ticket of a room closed for good (deleted): closed, with its last message."""
    return VisitorStatus(state="closed", position=None, estimated_wait_s=None,
                         poll_after_s=request.app[settings_key].poll_max_s,
                         message=request.app[rooms_key].ended_message(name), progress=0.0)


async def join_now(request: web.Request, room: Room,
                   solved: Solved | None = None) -> tuple[str, VisitorStatus]:
    """A new place in `room` and where it stands: (ticket token, status). Raises
    `JoinRefused` or `ChallengeUsed`."""
    ticket, token = await room.arrival.join(request, solved)
    try:
        status = await room.line.standing(ticket, just_joined=True)
    except TokenRejected as exc:
        # A ticket issued a moment ago refused: the room was reset between the two steps.
        log.warning("fresh ticket refused (%s); the room changed under the join", exc.code)
        raise GateUnavailable(exc.code) from exc
    return status.ticket_token or token, status


# --- JSON API -------------------------------------------------------------------------


async def join_api(request: web.Request) -> web.Response:
    """POST /queue/api/join: a new place in line, or the same one for a ticket holder of
    the room asked for."""
    room = await join_room(request)
    arrival = room.arrival
    try:
        existing = arrival.ticket(request)
    except TokenRejected:
        existing = None  # a bad ticket (or another room's) gets a fresh place, as asked
    if existing is not None:
        try:
            status = await room.line.standing(existing)
        except TokenRejected:
            pass
        else:
            token = status.ticket_token or arrival.token(request)
            assert token is not None
            return status_response(request, replace(status, ticket_token=None), room=room,
                                   ticket=token, http_status=200)
    try:
        token, status = await join_now(request, room, await api_solution(request, room))
    except ChallengeRejected as exc:
        return json_problem(request, await arrival.challenge_problem(exc))
    except JoinRefused as refused:
        return json_problem(request, arrival.refusal(refused))
    return status_response(request, replace(status, ticket_token=None), room=room,
                           ticket=token, http_status=201)


async def api_solution(request: web.Request, room: Room) -> Solved | None:
    """The proof of work in a join's JSON body, `{"challenge": token, "nonce": nonce}`,
    checked; None when the room asks for none. Raises `ChallengeRejected`, or a 400
    `Problem` for a body that is not a JSON object."""
    arrival = room.arrival
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
    """GET /queue/api/status: place, estimate and, once admitted, the pass, in the room
    the ticket names."""
    try:
        held = await held_room(request)
        if held is None:
            return json_problem(request, Problem("ticket_missing", 401))
        name, room = held
        if room is None:
            return status_response(request, ended_status(request, name))
        ticket = room.arrival.ticket(request)
        assert ticket is not None
        status = await room.line.standing(ticket)
    except TokenRejected as exc:
        response = json_problem(request, Problem(exc.code, 401))
        Arrival.clear_cookie(response)
        return response
    return status_response(request, status, room=room)


async def room_api(request: web.Request) -> web.Response:
    """GET /queue/api/room?room=: the room-wide state from this process's snapshot (no
    Redis round trip, no cookie read), cacheable for a second; 304 for a matching
    If-None-Match. Without `room`, the environment's room (QUEUE_GATE_ROOM)."""
    rooms = request.app[rooms_key]
    name = request.query.get("room")
    room = rooms.first if name is None else rooms.get(name)
    if room is None:
        return json_problem(request, Problem("room_not_found", 404))
    view = room.view
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


def status_response(request: web.Request, status: VisitorStatus, *, room: Room | None = None,
                    ticket: str | None = None, http_status: int = 200) -> web.Response:
    """The status as JSON, with the (new) ticket and the pass in their cookies."""
    if ticket is not None:
        body = json.dumps({"ticket": ticket, **status.as_json()}).encode()
    else:
        body = status_body(status)
    response = web.Response(body=body, status=http_status, headers=NO_STORE,
                            content_type="application/json", charset="utf-8")
    ticket = ticket or status.ticket_token
    room = room or request.app[rooms_key].first
    if ticket is not None:
        room.arrival.set_cookie(response, ticket)
    if status.pass_token is not None:
        set_pass_cookie(room.passes, response, status)
    return response


def set_pass_cookie(passes: Passes, response: web.StreamResponse,
                    status: VisitorStatus) -> None:
    assert status.pass_token is not None
    assert status.pass_expires_at is not None
    passes.set_cookie(response, status.pass_token, status.pass_expires_at)


# --- The waiting page -----------------------------------------------------------------


async def waiting_page(request: web.Request) -> web.Response:
    """GET /queue/wait: the waiting page of the room whose line covers `next` (else of the
    visitor's ticket, else the default room). Joins the visitor if they have no ticket of
    that room yet; a ticket of a room closed for good gets the closed page."""
    app = request.app
    next_path = safe_next(request.query.get("next"))
    notice = ""  # the catalogue key of what happened to the ticket they brought
    new_token: str | None = None
    try:
        held = await held_room(request)
    except TokenRejected as exc:
        held, notice = None, REJOINED_NOTICES.get(exc.code, f"err.{exc.code}")
    if held is not None and held[1] is None:
        return ended_page(request, held[0])
    room = page_room(request, next_path, held)
    if room is None:
        return see_other(next_path)  # no line covers it: nothing to wait for
    arrival = room.arrival
    status: VisitorStatus | None = None
    if held is not None and held[1] is room:
        try:
            ticket = arrival.ticket(request)
            status = await room.line.standing(ticket) if ticket is not None else None
        except TokenRejected as exc:
            status, notice = None, REJOINED_NOTICES.get(exc.code, f"err.{exc.code}")
    if status is None:
        try:
            solved: Solved | None = None
            if await arrival.challenge_bits():
                waited = request.query.get("waited")
                if waited is None:
                    return await challenge_page(request, arrival, next_path, notice=notice)
                solved = await waited_solution(request, arrival, waited)
            new_token, status = await join_now(request, room, solved)
        except ChallengeEarly:
            return await challenge_page(request, arrival, next_path,
                                        waited=request.query["waited"])
        except ChallengeRejected as exc:
            return await challenge_page(request, arrival, next_path, notice=f"err.{exc.code}",
                                        status=428)
        except JoinRefused as refused:
            return refused_page(request, arrival, refused)
    new_token = status.ticket_token or new_token
    if status.state == "admitted":
        response = see_other(next_path)
        set_pass_cookie(room.passes, response, status)
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
            "room_api": f"{ROOM_API_PATH}?room={room.name}",
            # The version this page shows: a change made before the first check counts.
            "room_version": state.version if (state := room.view.room_state) else None,
            # Turn messages are offered in the environment's room (queue_gate/notify.py).
            "notify": notify.page_context(request, offered=room is app[rooms_key].first),
        })
    if new_token is not None:
        arrival.set_cookie(response, new_token)
    return response


def page_room(request: web.Request, next_path: str,
              held: tuple[str, Room | None] | None) -> Room | None:
    """The waiting page's room: the one covering `next` when the visitor came from a path,
    else their ticket's, else the default room. None: `next` needs no place in line (no
    route covers it and QUEUE_GATE_DEFAULT_ROOM=none, or a bypass route). Raises a 403
    `Problem` for a blocked path."""
    rooms = request.app[rooms_key]
    if "next" in request.query:
        match = rooms.resolve(request, next_path)
        if match.action == "block":
            raise Problem("blocked", 403)
        if match.action == "bypass" and plain_path(next_path):
            return None  # the proxy lets it through without a pass
        return match.room
    if held is not None and held[1] is not None:
        return held[1]
    return rooms.table.default or rooms.first


def ended_page(request: web.Request, name: str) -> web.Response:
    """A ticket of a room closed for good: the closed page, once (the ticket is let go,
    so coming back later starts afresh wherever the visitor goes)."""
    response = request.app[pages_key].render(
        request, "closed.html", {"message": request.app[rooms_key].ended_message(name),
                                 "ended": True})
    Arrival.clear_cookie(response)
    return response


async def waited_solution(request: web.Request, arrival: Arrival, token: str) -> Solved:
    """A browser without JavaScript back after its wait. Raises `ChallengeRejected`."""
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
    next_path = safe_next(request.query.get("next"))
    try:
        held = await held_room(request)
    except TokenRejected:
        held = None
    room = page_room(request, next_path, held)
    if room is None:
        return see_other(next_path)
    arrival = room.arrival
    has_ticket = held is not None and held[1] is room
    if has_ticket:
        return see_other(wait_url(next_path))  # a second submit: the first one joined
    form = await request.post()
    try:
        new_token, _ = await join_now(
            request, room, await arrival.solution(form.get("challenge"), form.get("nonce")))
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
        "next_change": arrival.next_change(),
        "rendered_at": request.app[clock_key]()}, headers={"Refresh": "60"})
