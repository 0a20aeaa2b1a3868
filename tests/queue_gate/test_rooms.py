"""Many rooms per gate process, chosen by host and path, created, changed and deleted at
runtime through the admin API: every gate process serves every room within one tick.

Two gate apps share one private Redis and one injected clock (ticks are the tests'), so
admissions are counted exactly."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from queue_gate.admin import create_admin_app
from queue_gate.keys import health_reporter_key, rooms_key
from queue_gate.rooms import Route, RouteTable
from queue_gate.settings import Settings
from queue_gate.store import RoomKeys
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth
from vaccine_queue.config import SettingsError
from vaccine_queue.contract import PASS_HEADER

AdminClient = TestClient[web.Request, web.Application]

SENIORS = {"rate_per_minute": 60, "message": "Over 80s",
           "routes": [{"host": "*", "path": "/seniors", "action": "queue"}]}
STAFF = {"rate_per_minute": 120,
         "routes": [{"host": "*", "path": "/staff", "action": "queue"},
                    {"host": "*", "path": "/staff/help", "action": "bypass"},
                    {"host": "*", "path": "/staff/internal", "action": "block"}]}
CENTRE_HOST = "centre.example.org"
CENTRE = {"rate_per_minute": 30,
          "routes": [{"host": CENTRE_HOST, "path": "/", "action": "queue"}]}


async def tick_all(*gates: Gate) -> None:
    """One tick of each gate process: the registry, then every room it serves."""
    for gate in gates:
        await gate.app[rooms_key].refresh()


@pytest.fixture
async def pair(make_gate: GateFactory) -> tuple[Gate, Gate]:
    """Two gate processes of the environment's room "default", /manage bypassed."""
    return (await make_gate(bypass_paths=("/manage",)),
            await make_gate(bypass_paths=("/manage",)))


@pytest.fixture
async def admin_of(aiohttp_client: Callable[..., Awaitable[AdminClient]]
                   ) -> Callable[[Gate], Awaitable[AdminClient]]:
    async def start(gate: Gate) -> AdminClient:
        return await aiohttp_client(create_admin_app(gate.app))

    return start


async def put(admin: AdminClient, room: str, body: object) -> tuple[int, dict[str, Any]]:
    response = await admin.put(f"/admin/rooms/{room}", headers=auth(), json=body)
    return response.status, await response.json()


@pytest.fixture
async def three_rooms(pair: tuple[Gate, Gate],
                      admin_of: Callable[[Gate], Awaitable[AdminClient]]
                      ) -> tuple[Gate, Gate, AdminClient]:
    """seniors and staff on two paths of every host, centre on a host of its own, served
    by both gate processes."""
    one, two = pair
    admin = await admin_of(one)
    for name, body in (("seniors", SENIORS), ("staff", STAFF), ("centre", CENTRE)):
        code, doc = await put(admin, name, body)
        assert code == 201, doc
    await tick_all(two)
    return one, two, admin


async def join(gate: Gate, *, next_path: str | None = None, host: str | None = None,
               body: object = None) -> tuple[int, dict[str, Any]]:
    gate.client.session.cookie_jar.clear()
    url = "/queue/api/join" + (f"?next={next_path}" if next_path else "")
    response = await gate.client.post(url, json=body,
                                      headers={"Host": host} if host else {})
    gate.client.session.cookie_jar.clear()
    return response.status, await response.json()


async def status(gate: Gate, ticket: str) -> dict[str, Any]:
    gate.client.session.cookie_jar.clear()
    response = await gate.client.get("/queue/api/status",
                                     headers={"Authorization": f"Bearer {ticket}"})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    gate.client.session.cookie_jar.clear()
    return body


def ticket_room(gate: Gate, ticket: str) -> str:
    return gate.app[rooms_key].first.signer.load_any_ticket(ticket).room


async def test_each_room_admits_at_its_own_rate_in_its_own_order(
        three_rooms: tuple[Gate, Gate, AdminClient], clock: FakeClock) -> None:
    one, two, _ = three_rooms
    joined: dict[str, list[str]] = {"seniors": [], "staff": [], "centre": []}
    for i in range(150):
        # Joins alternate between the processes; each picks the room by path and host.
        gate = (one, two)[i % 2]
        for room, kwargs in (("seniors", {"next_path": "/seniors/book"}),
                             ("staff", {"next_path": "/staff"}),
                             ("centre", {"next_path": "/book", "host": CENTRE_HOST})):
            if room != "staff" and i >= {"seniors": 80, "centre": 40}[room]:
                continue
            code, body = await join(gate, **kwargs)
            assert code == 201, body
            assert ticket_room(gate, body["ticket"]) == room
            joined[room].append(body["ticket"])
    # A minute in steps of a second, the two processes ticking in turn.
    for second in range(60):
        clock.advance(1)
        await tick_all((one, two)[second % 2])
    await tick_all(one, two)
    rates = {"seniors": 60, "staff": 120, "centre": 30}
    for room, rate in rates.items():
        snapshot = one.app[rooms_key].get(room).view.snapshot  # type: ignore[union-attr]
        assert snapshot is not None
        assert snapshot.frontier == rate, room
        # In its own order: the rate-th visitor is through, the next one is first in line.
        tickets = joined[room]
        assert (await status(two, tickets[0]))["state"] == "admitted"
        assert (await status(one, tickets[rate - 1]))["state"] == "admitted"
        after = await status(two, tickets[rate])
        assert (after["state"], after["position"]) == ("waiting", 1), room
    # The environment's room saw none of it.
    default = one.app[rooms_key].first.view.snapshot
    assert default is not None and default.seq == 0


async def admitted_pass(gate: Gate, clock: FakeClock, next_path: str,
                        host: str | None = None) -> str:
    code, body = await join(gate, next_path=next_path, host=host)
    assert code == 201, body
    clock.advance(2)
    await tick_all(gate)
    admitted = await status(gate, body["ticket"])
    assert admitted["state"] == "admitted", admitted
    token: str = admitted["pass"]
    return token


async def test_a_pass_of_one_room_does_not_open_another(
        three_rooms: tuple[Gate, Gate, AdminClient], clock: FakeClock) -> None:
    one, two, _ = three_rooms
    token = await admitted_pass(one, clock, "/seniors")
    api = {PASS_HEADER: token, "Accept": "application/json"}
    opened = await two.client.get("/seniors/book", headers=api)
    assert opened.status == 200 and (await opened.json())["path"] == "/seniors/book"
    for path, host in (("/staff/book", None), ("/book", CENTRE_HOST), ("/book", None)):
        response = await two.client.get(path, headers={**api, **({"Host": host} if host
                                                                   else {})})
        assert response.status == 401, path
        body = await response.json()
        assert body["error"] == "pass_other_room" and body["join"] == "/queue/api/join"
    counted = two.registry.get_sample_value(
        "queuegate_tokens_rejected_total", {"room": "staff", "reason": "pass_other_room"})
    assert counted == 1
    # A browser goes to that room's line, and keeps the pass it has for its own.
    two.client.session.cookie_jar.clear()
    browser = await two.client.get("/staff/book", allow_redirects=False,
                                   headers={PASS_HEADER: token, "Accept": "text/html"})
    assert browser.status == 303
    assert browser.headers["Location"] == "/queue/wait?next=/staff/book"
    assert "Set-Cookie" not in browser.headers


async def commands(client: Redis) -> int:
    return int((await client.info("stats"))["total_commands_processed"])


async def test_bypass_reaches_the_backend_without_a_pass_or_redis(
        three_rooms: tuple[Gate, Gate, AdminClient], redis_url: str) -> None:
    one, _, _ = three_rooms
    counter = Redis.from_url(redis_url)
    before = await commands(counter)
    for path in ("/staff/help", "/staff/help/faq", "/manage/cancel"):
        response = await one.client.get(path, headers={"Accept": "text/html"})
        assert response.status == 200, path
        assert (await response.json())["path"] == path
    assert await commands(counter) - before == 1  # only the INFO itself
    await counter.aclose()
    # Segment boundaries: /staff/helpx is the staff line's.
    response = await one.client.get("/staff/helpx", headers={"Accept": "application/json"})
    assert (response.status, (await response.json())["error"]) == (401, "pass_required")


async def test_a_blocked_route_answers_403_as_a_page_or_json(
        three_rooms: tuple[Gate, Gate, AdminClient]) -> None:
    one, two, _ = three_rooms
    for lang, words in (("en", "not available"), ("de", "nicht erreichbar")):
        page = await one.client.get(f"/staff/internal/list?lang={lang}",
                                    headers={"Accept": "text/html"})
        assert page.status == 403
        assert page.content_type == "text/html"
        assert words in await page.text()
    app = await two.client.post("/staff/internal", headers={"Accept": "application/json"})
    assert app.status == 403
    assert (await app.json())["error"] == "blocked"
    # The waiting page and a join for a blocked path say the same.
    wait = await one.client.get("/queue/wait?next=/staff/internal",
                                headers={"Accept": "text/html"})
    assert wait.status == 403
    code, body = await join(one, next_path="/staff/internal/x")
    assert (code, body["error"]) == (403, "blocked")


async def test_join_by_room_name_and_unknown_rooms(
        three_rooms: tuple[Gate, Gate, AdminClient]) -> None:
    one, _, _ = three_rooms
    code, body = await join(one, body={"room": "staff"})
    assert code == 201 and ticket_room(one, body["ticket"]) == "staff"
    code, body = await join(one, body={"next": "/seniors/x"})
    assert code == 201 and ticket_room(one, body["ticket"]) == "seniors"
    for unknown in ({"room": "nope"}, {"room": 7}):
        code, body = await join(one, body=unknown)
        assert code == 404 and body["error"] == "room_not_found"
        assert "Warteschlange" in body["message"]  # German unless asked otherwise
    # No room named, no path: the default room (the environment's).
    code, body = await join(one)
    assert code == 201 and ticket_room(one, body["ticket"]) == "default"
    # Room state and health per room.
    state = await one.client.get("/queue/api/room?room=centre")
    assert (await state.json())["rate_per_minute"] == 30
    assert (await one.client.get("/queue/api/room?room=nope")).status == 404
    health = await (await one.client.get("/queue/healthz")).json()
    assert set(health["rooms"]) == {"default", "seniors", "staff", "centre"}
    assert health["ok"] is True
    single = await one.client.get("/queue/healthz?room=staff")
    assert (await single.json())["room"] == "staff"
    assert (await one.client.get("/queue/healthz?room=nope")).status == 404


async def test_a_room_created_changed_and_deleted_reaches_every_gate_within_one_tick(
        pair: tuple[Gate, Gate], admin_of: Callable[[Gate], Awaitable[AdminClient]],
        clock: FakeClock) -> None:
    one, two = pair
    admin = await admin_of(one)
    code, doc = await put(admin, "popup", {
        "rate_per_minute": 6, "message": "Pop-up centre",
        "routes": [{"host": "*", "path": "/popup", "action": "queue"}]})
    assert code == 201, doc
    assert doc["routes"] == [{"host": "*", "path": "/popup", "action": "queue"}]
    # Not yet on the second process: the default room's line covers /popup there.
    assert two.app[rooms_key].get("popup") is None
    await tick_all(two)
    room = two.app[rooms_key].get("popup")
    assert room is not None and room.view.snapshot is not None
    assert room.view.snapshot.config.rate_per_minute == 6
    code, body = await join(two, next_path="/popup/book")
    assert code == 201 and ticket_room(two, body["ticket"]) == "popup"
    waiting = body["ticket"]
    assert (await status(two, waiting))["message"] == "Pop-up centre"

    patched = await admin.patch("/admin/rooms/popup", headers=auth(),
                                json={"rate_per_minute": 0, "mode": "paused"})
    assert patched.status == 200
    await tick_all(two)
    assert room.view.snapshot.config.mode == "paused"
    assert (await status(two, waiting))["state"] == "paused"

    listed = await (await admin.get("/admin/rooms", headers=auth())).json()
    assert "popup" in listed["rooms"]
    assert listed["routes"]["popup"] == [{"host": "*", "path": "/popup", "action": "queue"}]

    deleted = await admin.delete("/admin/rooms/popup", headers=auth())
    assert deleted.status == 200
    await tick_all(two)
    assert two.app[rooms_key].get("popup") is None
    # Dashboards stop listing it.
    assert two.registry.get_sample_value("queuegate_visitors_waiting", {"room": "popup"}) is None
    assert two.registry.get_sample_value("queuegate_visitors_waiting",
                                         {"room": "default"}) is not None
    # Its waiting visitor is told the line closed, never an error.
    closed = await status(two, waiting)
    assert (closed["state"], closed["position"]) == ("closed", None)
    two.client.session.cookie_jar.clear()
    page = await two.client.get("/queue/wait?next=/popup/book&lang=en",
                                headers={"Cookie": f"qg_ticket={waiting}"})
    assert page.status == 200
    assert "This line is closed" in await page.text()
    # It is gone from the API; its name cannot be given again; /popup is the default's.
    assert (await admin.get("/admin/rooms/popup", headers=auth())).status == 404
    assert (await admin.delete("/admin/rooms/popup", headers=auth())).status == 404
    assert (await admin.patch("/admin/rooms/popup", headers=auth(),
                              json={"mode": "queue"})).status == 404
    code, body = await put(admin, "popup", {})
    assert (code, body["error"]) == (409, "room_deleted")
    assert "popup" not in (await (await admin.get("/admin/rooms", headers=auth())).json()
                           )["rooms"]
    code, body = await join(one, next_path="/popup/book")
    assert code == 201 and ticket_room(one, body["ticket"]) == "default"
    # Every change is in the audit.
    audit = await (await admin.get("/admin/audit?room=popup", headers=auth())).json()
    fields = {entry["field"] for entry in audit["entries"]}
    assert {"rate_per_minute", "message", "routes", "mode", "deleted_at"} <= fields
    assert {entry["operator"] for entry in audit["entries"]} == {"admin"}


async def test_put_replaces_a_room_and_reports_created_or_replaced(
        pair: tuple[Gate, Gate], admin_of: Callable[[Gate], Awaitable[AdminClient]]) -> None:
    one, _ = pair
    admin = await admin_of(one)
    code, doc = await put(admin, "rebook", {"rate_per_minute": 5, "message": "Second doses"})
    assert (code, doc["rate_per_minute"], doc["message"]) == (201, 5, "Second doses")
    code, doc = await put(admin, "rebook", {"mode": "paused"})
    # Replaced: what the body leaves out takes its default.
    assert (code, doc["mode"], doc["rate_per_minute"], doc["message"]) == (200, "paused",
                                                                           60, "")
    # The environment's room can be given routes the same way.
    code, doc = await put(admin, "default", {"routes": [
        {"host": "*", "path": "/", "action": "queue"},
        {"host": "*", "path": "/legal", "action": "bypass"}]})
    assert code == 200
    await tick_all(one)
    response = await one.client.get("/legal/imprint")
    assert response.status == 200


@pytest.mark.parametrize(("body", "words"), [
    ({"routes": "/x"}, "routes must be a list"),
    ({"routes": [{"host": "*", "path": "/x"}]}, 'exactly "host", "path" and "action"'),
    ({"routes": [{"host": "*", "path": "/x", "action": "skip"}]},
     "routes[0].action must be one of: queue, bypass, block"),
    ({"routes": [{"host": "bad host", "path": "/x", "action": "queue"}]}, "routes[0].host"),
    ({"routes": [{"host": "*", "path": "x", "action": "queue"}]}, "routes[0].path"),
    ({"routes": [{"host": "*", "path": "/queue/api", "action": "bypass"}]},
     "nothing under /queue"),
    ({"routes": [{"host": "*", "path": "/x/../y", "action": "queue"}]}, "routes[0].path"),
    ({"routes": [{"host": "*", "path": "/x", "action": "queue"},
                 {"host": "*", "path": "/x/", "action": "block"}]}, "named twice"),
    ({"routes": [{"host": "*", "path": "/staff", "action": "queue"}]},
     "belongs to room 'staff'"),
    ({"rate_per_minute": -1}, "rate_per_minute must be a whole number"),
    ({"mode": "open"}, "mode must be one of"),
    ({"colour": "red"}, "Unknown field(s): colour"),
    ({"rate_mode": "adaptive"}, "rate_max above 0"),
    ([], "Send a JSON object"),
])
async def test_invalid_put_bodies_are_refused_with_a_reason(
        three_rooms: tuple[Gate, Gate, AdminClient], body: object, words: str) -> None:
    _, _, admin = three_rooms
    code, answer = await put(admin, "newroom", body)
    assert code == 422, answer
    assert answer["error"] == "invalid_change"
    assert words in answer["message"]
    assert (await admin.get("/admin/rooms/newroom", headers=auth())).status == 404


async def test_put_and_patch_need_json_and_a_room_name(
        three_rooms: tuple[Gate, Gate, AdminClient]) -> None:
    _, _, admin = three_rooms
    response = await admin.put("/admin/rooms/newroom", headers=auth(), data=b"{not json")
    assert response.status == 400 and (await response.json())["error"] == "invalid_json"
    response = await admin.put("/admin/rooms/Bad%20Name", headers=auth(), json={})
    assert response.status == 404
    response = await admin.put("/admin/rooms/newroom", json={})
    assert response.status == 401
    response = await admin.patch("/admin/rooms/staff", headers=auth(), json={
        "routes": [{"host": "*", "path": "/seniors", "action": "queue"}]})
    assert response.status == 422
    assert "belongs to room 'seniors'" in (await response.json())["message"]


async def test_after_booking_a_citizen_manages_it_without_queueing(
        pair: tuple[Gate, Gate], admin_of: Callable[[Gate], Awaitable[AdminClient]],
        clock: FakeClock) -> None:
    one, two = pair
    admin = await admin_of(one)
    code, _ = await put(admin, "booking", {"rate_per_minute": 60, "routes": [
        {"host": "*", "path": "/done", "action": "queue"},
        {"host": "*", "path": "/manage", "action": "bypass"}]})
    assert code == 201
    await tick_all(two)
    token = await admitted_pass(two, clock, "/done")
    # The booking ends the session (the stand-in backend's /done says so).
    booked = await one.client.get("/done", headers={PASS_HEADER: token})
    assert (booked.status, await booked.text()) == (200, "booked")
    again = await one.client.get("/done", headers={PASS_HEADER: token,
                                                   "Accept": "application/json"})
    assert again.status == 401
    # Looking at and cancelling the booking: no pass, no line.
    two.client.session.cookie_jar.clear()
    for method, path in (("GET", "/manage"), ("POST", "/manage/cancel")):
        response = await two.client.request(method, path, headers={"Accept": "text/html"},
                                            allow_redirects=False)
        assert response.status in (200, 201), path
        assert json.loads(await response.text())["path"] == path


def table(routes: dict[str, list[Route]], *, first: str = "default",
          default: str | None = "default") -> RouteTable:
    class Fake:
        def __init__(self, name: str, own: list[Route]) -> None:
            self.name, self.routes = name, tuple(own)

    rooms = {name: Fake(name, own) for name, own in routes.items()}
    return RouteTable(list(rooms.values()), rooms[first], ("/static/",),  # type: ignore[arg-type]
                      rooms[default] if default else None)  # type: ignore[arg-type]


def test_the_most_specific_route_wins() -> None:
    routes = table({
        "default": [Route("*", "/", "queue")],
        "a": [Route("*", "/manage", "bypass"), Route("*", "/manage/admin", "block")],
        "b": [Route("b.example.org", "/", "queue")],
        "c": [Route("b.example.org", "/manage", "queue")],
    })

    def where(host: str, path: str) -> tuple[str | None, str]:
        match = routes.resolve(host, path)
        return (match.room.name if match.room else None), match.action

    assert where("a.example.org", "/manage") == ("a", "bypass")
    assert where("a.example.org", "/manage/") == ("a", "bypass")
    assert where("a.example.org", "/manage/x/y") == ("a", "bypass")
    assert where("a.example.org", "/managex") == ("default", "queue")
    assert where("a.example.org", "/manage/admin/users") == ("a", "block")
    # An exact host before "*", then the longest path; the port does not count.
    assert where("B.example.org:8080", "/manage/x") == ("c", "queue")
    assert where("b.example.org", "/other") == ("b", "queue")
    # QUEUE_GATE_BYPASS_PATHS with a trailing "/" cover only what is under them.
    assert where("x", "/static/app.css") == ("default", "bypass")
    assert where("x", "/static") == ("default", "queue")
    # A long path costs no more than the deepest route.
    assert where("x", "/manage" + "/a" * 3000) == ("a", "bypass")


def test_no_route_goes_to_the_default_room_or_straight_through() -> None:
    own = {"default": [Route("*", "/book", "queue")], "a": [Route("*", "/a", "queue")]}
    assert table(own).resolve("x", "/elsewhere").room.name == "default"  # type: ignore[union-attr]
    assert table(own, default="a").resolve("x", "/elsewhere").room.name == "a"  # type: ignore[union-attr]
    through = table(own, default=None).resolve("x", "/elsewhere")
    assert (through.room, through.action) == (None, "bypass")


async def test_default_room_none_sends_uncovered_paths_straight_through(
        make_gate: GateFactory, admin_of: Callable[[Gate], Awaitable[AdminClient]]) -> None:
    gate = await make_gate(default_room="none")
    admin = await admin_of(gate)
    code, _ = await put(admin, "default", {"routes": [
        {"host": "*", "path": "/book", "action": "queue"}]})
    assert code == 200
    await tick_all(gate)
    through = await gate.client.get("/about", headers={"Accept": "application/json"})
    assert through.status == 200
    queued = await gate.client.get("/book", headers={"Accept": "application/json"})
    assert queued.status == 401


async def test_the_waiting_page_of_a_room_watches_that_room(
        three_rooms: tuple[Gate, Gate, AdminClient]) -> None:
    one, _, _ = three_rooms
    page = await one.client.get("/queue/wait?next=/seniors/book&lang=en",
                                headers={"Accept": "text/html"})
    assert page.status == 200
    text = await page.text()
    assert '"/queue/api/room?room=seniors"' in text
    assert "Over 80s" in text  # the room's own message
    # A path no line needs (a bypass route) is not waited for.
    through = await one.client.get("/queue/wait?next=/staff/help", allow_redirects=False)
    assert (through.status, through.headers["Location"]) == (303, "/staff/help")


def test_the_default_room_setting() -> None:
    env = {"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "t"}
    assert Settings.from_env(env).default_room == ""
    assert Settings.from_env({**env, "QUEUE_GATE_DEFAULT_ROOM": "none"}).default_room == "none"
    with pytest.raises(SettingsError, match="QUEUE_GATE_DEFAULT_ROOM"):
        Settings.from_env({**env, "QUEUE_GATE_DEFAULT_ROOM": "Not A Room"})


async def test_a_runtime_room_in_adaptive_mode_gets_the_backend_verdict(
        pair: tuple[Gate, Gate], admin_of: Callable[[Gate], Awaitable[AdminClient]],
        redis_url: str) -> None:
    one, _ = pair
    admin = await admin_of(one)
    code, _ = await put(admin, "adaptive", {"rate_mode": "adaptive", "rate_min": 6,
                                            "rate_max": 600})
    assert code == 201
    await tick_all(one)
    # The environment's room is in fixed mode: its own decision is None, the other room's
    # health hash has this process's verdict.
    assert await one.app[health_reporter_key].report() is None
    client = Redis.from_url(redis_url)
    assert await client.hlen(RoomKeys("adaptive").health) == 1
    assert await client.hlen(RoomKeys("default").health) == 0
    await client.aclose()


async def test_creating_and_deleting_rooms_needs_the_admin_role_for_the_room(
        make_gate: GateFactory, admin_of: Callable[[Gate], Awaitable[AdminClient]]) -> None:
    tokens = {"lead": "lead-token-0123456789", "centre-ops": "centre-ops-token-0123",
              "centre-admin": "centre-admin-token-012"}
    gate = await make_gate(admin_tokens=tuple(f"{n}:{t}" for n, t in tokens.items()),
                           operator_grants=("centre-ops=operator:centre",
                                            "centre-admin=admin:centre"))
    admin = await admin_of(gate)
    body = {"routes": [{"host": "*", "path": "/centre", "action": "queue"}]}

    async def call(method: str, room: str, who: str, sent: object = body) -> int:
        response = await admin.request(method, f"/admin/rooms/{room}", json=sent,
                                       headers=auth(tokens[who]))
        return response.status

    # An operator of the room may change it, not create or delete it.
    assert await call("PUT", "centre", "centre-ops") == 403
    assert await call("PUT", "centre", "centre-admin") == 201
    assert await call("PATCH", "centre", "centre-ops") == 200
    assert await call("DELETE", "centre", "centre-ops") == 403
    # A room its grant does not cover does not exist for it.
    assert await call("PUT", "elsewhere", "centre-admin") == 404
    # Its route check does not name a room it cannot see.
    assert await call("PUT", "lead-room", "lead", {}) == 201
    answer = await admin.put("/admin/rooms/centre", headers=auth(tokens["centre-admin"]),
                             json={"routes": [{"host": "*", "path": "/centre",
                                               "action": "queue"}]})
    assert answer.status == 200
    await admin.patch("/admin/rooms/lead-room", headers=auth(tokens["lead"]), json={
        "routes": [{"host": "*", "path": "/lead", "action": "queue"}]})
    taken = await admin.patch("/admin/rooms/centre", headers=auth(tokens["centre-admin"]),
                              json={"routes": [{"host": "*", "path": "/lead",
                                                "action": "queue"}]})
    assert taken.status == 422
    message = (await taken.json())["message"]
    assert "another room" in message and "lead-room" not in message
    listed = await (await admin.get("/admin/rooms", headers=auth(tokens["centre-ops"]))).json()
    assert listed["rooms"] == ["centre"] and set(listed["routes"]) == {"centre"}
    assert await call("DELETE", "centre", "centre-admin") == 200


async def test_an_agent_pass_of_a_runtime_room_opens_that_room_only(
        three_rooms: tuple[Gate, Gate, AdminClient]) -> None:
    one, two, admin = three_rooms
    issued = await admin.post("/admin/rooms/staff/agent-passes", headers=auth(),
                              json={"agent": "Anna S.", "hours": 8})
    assert issued.status == 201, await issued.text()
    token = (await issued.json())["pass"]
    api = {PASS_HEADER: token, "Accept": "application/json"}
    for gate in (one, two):  # every process checks it against the room's own record
        for _ in range(3):
            booked = await gate.client.get("/done", headers={**api, "Host": "x"})
            assert booked.status == 401  # /done is the default room's line, not staff's
            opened = await gate.client.get("/staff/book", headers=api)
            assert opened.status == 200, await opened.text()
    elsewhere = await two.client.get("/seniors/book", headers=api)
    assert (elsewhere.status, (await elsewhere.json())["error"]) == (401, "pass_other_room")


async def test_put_sets_the_schedule_and_a_replacement_without_one_clears_it(
        pair: tuple[Gate, Gate], admin_of: Callable[[Gate], Awaitable[AdminClient]],
        clock: FakeClock) -> None:
    one, _ = pair
    admin = await admin_of(one)
    later = int(clock.now) + 3600
    code, doc = await put(admin, "evening", {
        "rate_per_minute": 30, "schedule": [{"at": later, "set": {"mode": "closed"}}]})
    assert code == 201, doc
    assert [entry["set"] for entry in doc["schedule"]] == [{"mode": "closed"}]
    code, doc = await put(admin, "evening", {"schedule": [{"at": "soon", "set": {}}]})
    assert code == 422 and "schedule" in doc["message"]
    code, doc = await put(admin, "evening", {"rate_per_minute": 40})
    assert (code, doc["schedule"], doc["rate_per_minute"]) == (200, [], 40)
