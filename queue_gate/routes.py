"""The public routes, in the order a visitor meets them: the gate's own pages and API under
/queue/, everything else to the backend for those with a pass.

Arrival (`arrival.py`: the ticket and a place in line) -> waiting (`waiting.py`: the page
and the status API, where the ticket stands: `line.py`) -> admission (`admission.py`: the
frontier moves at the operators' rate) -> pass (`passes.py`) -> proxy (`proxy.py`).
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from queue_gate import notify, proxy, waiting
from queue_gate.admission import RoomView
from queue_gate.keys import pages_key, rooms_key, settings_key
from vaccine_queue.pages import Problem, json_problem
from vaccine_queue.site import DEMO_LEGAL_PAGES, demo_legal_page, stylesheet_response

# The site's one stylesheet, served by the gate itself: waiting needs no pass.
STYLESHEET_PATH = "/queue/static/site.css"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/queue/wait", waiting.waiting_page)
    app.router.add_post("/queue/wait", waiting.solved_join)
    app.router.add_post("/queue/api/join", waiting.join_api)
    app.router.add_get("/queue/api/status", waiting.status_api)
    app.router.add_get("/queue/api/room", waiting.room_api)
    app.router.add_get("/queue/healthz", health)
    notify.setup_routes(app)  # a message when the turn is near, and its restore link
    app.router.add_get(STYLESHEET_PATH, stylesheet)
    for path in DEMO_LEGAL_PAGES:
        app.router.add_get(path, legal_page)
    # Anything else under /queue/ is ours and does not exist; it must not reach the backend.
    app.router.add_route("*", "/queue/{tail:.*}", not_found)
    app.router.add_route("*", "/{tail:.*}", proxy.forward)


def _lost_at(view: RoomView) -> str | None:
    snapshot = view.snapshot
    lost = snapshot.reseeded_at if snapshot is not None else None
    return None if lost is None else dt.datetime.fromtimestamp(lost, dt.UTC).isoformat()


async def health(request: web.Request) -> web.Response:
    """GET /queue/healthz: for load balancers; 503 when this process's view of any room it
    serves is stale. Says when Redis last lost a room (re-created from a gate's snapshot),
    if it ever did: `room_lost_at` of the environment's room, `rooms` of each.
    `?room=<name>`: one room only (404 for a room this process does not serve)."""
    rooms = request.app[rooms_key]
    name = request.query.get("room")
    if name is not None:
        room = rooms.get(name)
        if room is None:
            return json_problem(request, Problem("room_not_found", 404))
        ok = room.view.fresh
        return web.json_response({"ok": ok, "room": name, "room_lost_at": _lost_at(room.view)},
                                 status=200 if ok else 503)
    each = {room.name: {"ok": room.view.fresh, "room_lost_at": _lost_at(room.view)}
            for room in rooms}
    ok = all(state["ok"] for state in each.values())
    return web.json_response(
        {"ok": ok, "room_lost_at": _lost_at(rooms.first.view), "rooms": each},
        status=200 if ok else 503)


async def stylesheet(request: web.Request) -> web.Response:
    """GET /queue/static/site.css: the site's one stylesheet (the booking pages' too)."""
    return stylesheet_response(request.app[pages_key])


async def legal_page(request: web.Request) -> web.Response:
    """The demo's placeholder Impressum and Datenschutz pages (vaccine_queue/site.py)."""
    return demo_legal_page(request, request.app[pages_key], request.app[settings_key].site)


async def not_found(request: web.Request) -> web.Response:
    allowed = {
        route.method
        for route in request.app.router.routes()
        if route.resource is not None and route.resource.canonical == request.path
    }
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
