"""Adaptive admission: the room's controller (lua/health-3.lua) with an injected clock, the
verdicts of one process (health.py), the proxy's bounded wait and its recovering page,
and the decision shared by two gate apps on one Redis. Real aiohttp servers as backends:
one that answers, one that hangs until the test lets it go, and a closed port for a
backend that answers nothing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner
from prometheus_client import CollectorRegistry

from queue_gate import controller
from queue_gate.health import _Window, classify, p95, parse_capacity
from queue_gate.keys import (
    backend_health_key,
    health_reporter_key,
    room_view_key,
    settings_key,
)
from queue_gate.main import create_app
from queue_gate.store import RoomStore
from tests.queue_gate.conftest import (
    FakeClock,
    Gate,
    GateFactory,
    auth,
    gate_settings,
    join,
    status,
)
from tests.queue_gate.test_proxy import admit
from vaccine_queue.contract import CAPACITY_HEADER, CAPACITY_PATH, PASS_COOKIE, PASS_HEADER

STEP = 60 * controller.DECIDE_EVERY_S / controller.RAMP_S  # per decision, rate_max 60


def store_of(gate: Gate) -> RoomStore:
    return gate.app[room_view_key].store


async def make_adaptive(gate: Gate, *, low: int = 6, high: int = 60, start: int = 30) -> None:
    await gate.tick()
    await store_of(gate).update_config({"rate_mode": "adaptive", "rate_min": low,
                                        "rate_max": high, "rate_per_minute": start})
    await gate.tick()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nobody listens there once the socket is closed


# --- the controller, with an injected clock -------------------------------------------


async def test_healthy_climbs_trouble_halves_with_a_hold_dead_stops_at_once(
        gate: Gate, clock: FakeClock) -> None:
    await make_adaptive(gate)
    store = store_of(gate)
    first = await store.report_health("ok", 100.0, 0.0)
    assert (first.rate_mode, first.effective_rate, first.backend, first.decided) == (
        "adaptive", 30 + STEP, "up", True)
    again = await store.report_health("ok", 100.0, 0.0)
    assert (again.effective_rate, again.decided) == (30 + STEP, False)  # once per period
    clock.advance(controller.DECIDE_EVERY_S)
    cut = await store.report_health("trouble", 101.0, 0.0)
    assert cut.effective_rate == pytest.approx((30 + STEP) * controller.DECREASE_FACTOR)
    clock.advance(controller.DECIDE_EVERY_S)
    held = await store.report_health("trouble", 102.0, 0.0)
    assert held.decided and held.effective_rate == cut.effective_rate  # within the hold
    rate = held.effective_rate
    for _ in range(4):
        clock.advance(controller.DECREASE_HOLD_S)
        rate = (await store.report_health("trouble", 103.0, 0.0)).effective_rate
    assert rate == 6  # never below rate_min while the backend answers
    dead = await store.report_health("dead", 103.0, 104.0)  # no waiting for the period
    assert (dead.effective_rate, dead.backend, dead.decided) == (0, "down", True)
    await gate.tick()
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.backend_down and snapshot.effective_rate == 0


async def test_after_recovery_the_full_rate_returns_within_the_ramp(
        gate: Gate, clock: FakeClock) -> None:
    await make_adaptive(gate)
    store = store_of(gate)
    await store.report_health("dead", 0.0, 50.0)
    back = await store.report_health("ok", 51.0, 50.0)
    assert (back.backend, back.effective_rate) == ("up", 6)  # rate_min first
    slow_start = []
    for _ in range(3):  # doubling up to REGAIN_SHARE of rate_max (60 x 0.5)
        clock.advance(controller.DECIDE_EVERY_S)
        slow_start.append((await store.report_health("ok", 52.0, 50.0)).effective_rate)
    assert slow_start == [12, 24, 60 * controller.REGAIN_SHARE]
    waited = 3 * controller.DECIDE_EVERY_S
    rate = back.effective_rate
    while rate < 60:
        clock.advance(controller.DECIDE_EVERY_S)
        waited += controller.DECIDE_EVERY_S
        rate = (await store.report_health("ok", 52.0, 50.0)).effective_rate
    assert waited <= controller.RAMP_S
    clock.advance(controller.DECIDE_EVERY_S)
    assert (await store.report_health("ok", 53.0, 50.0)).effective_rate == 60  # the ceiling


async def test_trouble_ends_the_slow_start(gate: Gate, clock: FakeClock) -> None:
    await make_adaptive(gate)
    store = store_of(gate)
    await store.report_health("dead", 0.0, 50.0)
    await store.report_health("ok", 51.0, 50.0)  # back at 6
    clock.advance(controller.DECIDE_EVERY_S)
    assert (await store.report_health("ok", 52.0, 50.0)).effective_rate == 12
    clock.advance(controller.DECIDE_EVERY_S)
    cut = await store.report_health("trouble", 53.0, 50.0)
    assert cut.effective_rate == pytest.approx(12 * controller.DECREASE_FACTOR)
    clock.advance(controller.DECREASE_HOLD_S)
    climbed = await store.report_health("ok", 54.0, 50.0)
    assert climbed.effective_rate == pytest.approx(cut.effective_rate + STEP)  # additive now


async def test_while_the_backend_is_down_nobody_is_admitted_and_the_line_is_told(
        gate: Gate, clock: FakeClock) -> None:
    await make_adaptive(gate, low=30, start=60)
    tickets = [(await join(gate))["ticket"] for _ in range(5)]
    await store_of(gate).report_health("dead", 0.0, 10.0)
    clock.advance(30)  # at 60 a minute, 30 s would admit every one of them
    await gate.tick()
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.frontier == 0 and snapshot.admitted == 0
    code, body = await status(gate, tickets[0])
    assert (code, body["state"], body["estimated_wait_s"]) == (200, "recovering", None)
    # The front of the line looks again soon (as at rate_min), not after the longest wait.
    assert isinstance(body["poll_after_s"], float)
    assert body["poll_after_s"] < gate.app[settings_key].poll_max_s / 2
    page = await gate.client.get("/queue/wait", headers={
        "Authorization": f"Bearer {tickets[0]}", "Accept": "text/html",
        "Cookie": f"qg_ticket={tickets[0]}", "Accept-Language": "de"})
    assert "Die Terminbuchung erholt sich gerade" in await page.text()
    await store_of(gate).report_health("ok", 11.0, 10.0)
    clock.advance(5)
    await gate.tick()
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and not snapshot.backend_down and snapshot.admitted > 0


async def test_fixed_mode_is_unchanged(gate: Gate, clock: FakeClock) -> None:
    await gate.tick()
    decision = await store_of(gate).report_health("dead", 0.0, 10.0)
    assert (decision.rate_mode, decision.backend) == ("fixed", "")
    for _ in range(3):
        await join(gate)
    clock.advance(2)  # 60 a minute: two admissions
    await gate.tick()
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None
    assert (snapshot.admitted, snapshot.effective_rate, snapshot.backend_down) == (2, 60, False)


async def test_two_gates_share_one_decision(make_gate: GateFactory, clock: FakeClock) -> None:
    one, two = await make_gate(), await make_gate()
    await make_adaptive(one)
    assert store_of(one).process_id != store_of(two).process_id
    assert (await store_of(one).report_health("ok", 10.0, 0.0)).decided
    assert not (await store_of(two).report_health("ok", 10.0, 0.0)).decided  # same period
    # One process sees the backend dead: every process stops admitting.
    await store_of(two).report_health("dead", 10.0, 11.0)
    await one.tick()
    snapshot = one.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.backend_down and snapshot.effective_rate == 0
    # The other still reports the answer it had before: older than the silence, still down.
    clock.advance(controller.DECIDE_EVERY_S)
    assert (await store_of(one).report_health("ok", 10.0, 0.0)).backend == "down"
    # An answer newer than the silence, from either process, brings the room back.
    assert (await store_of(one).report_health("ok", 12.0, 0.0)).backend == "up"
    await two.tick()
    snapshot = two.app[room_view_key].snapshot
    assert snapshot is not None and not snapshot.backend_down


async def test_a_stopped_process_verdict_expires(make_gate: GateFactory, clock: FakeClock
                                                 ) -> None:
    one, two = await make_gate(), await make_gate()
    await make_adaptive(one)
    await store_of(two).report_health("dead", 0.0, 11.0)  # then that process stops
    clock.advance(controller.VERDICT_TTL_S + 1)
    assert (await store_of(one).report_health("idle", 0.0, 0.0)).backend == "up"


# --- one process's verdicts -------------------------------------------------------------


def test_verdicts() -> None:
    assert classify(_Window(), 10, 1.0) == "idle"
    assert classify(_Window(latencies=[0.1] * 20, answered=20), 10, 1.0) == "ok"
    assert classify(_Window(no_answer=1, failed=1), 10, 1.0) == "dead"
    assert classify(_Window(no_answer=1, failed=1, answered=3, latencies=[0.1] * 3), 10,
                    1.0) == "ok"  # one cut request among answers is not a dead backend
    assert classify(_Window(latencies=[0.1] * 19 + [2.0], answered=20), 10, 1.0) == "ok"
    assert classify(_Window(latencies=[0.1] * 18 + [2.0] * 2, answered=20), 10, 1.0) == \
        "trouble"  # p95 over the target
    assert classify(_Window(latencies=[0.1] * 20, answered=22, failed=2), 10, 1.0) == "trouble"
    assert classify(_Window(latencies=[0.1], answered=1, peak_in_flight=8), 10, 1.0) == \
        "trouble"
    assert classify(_Window(answered=1, capacities=[0.05]), 10, 1.0) == "trouble"
    assert classify(_Window(answered=1, capacities=[0.9]), 10, 1.0) == "idle"
    # A backend busy near its capacity: a moment without a free connection is no trouble;
    # most answers short of capacity are.
    assert classify(_Window(answered=5, capacities=[0.5, 0.0, 0.6, 0.4, 0.1]), 10,
                    1.0) == "idle"
    assert classify(_Window(answered=5, capacities=[0.05, 0.0, 0.6, 0.0, 0.2]), 10,
                    1.0) == "trouble"


def test_capacity_hints_are_read_safely() -> None:
    assert [parse_capacity(v) for v in (None, "0.4", "7", "-1", "nan", "many")] == [
        None, 0.4, 1.0, 0.0, None, None]
    assert p95([]) is None and p95([3.0, 1.0, 2.0]) == 3.0


# --- the proxy: bounded waits, the recovering page, the probe --------------------------


@pytest.fixture
async def hanging(aiohttp_server: Callable[..., Awaitable[TestServer]]
                  ) -> AsyncIterator[tuple[TestServer, asyncio.Event, asyncio.Event]]:
    """A backend that answers /capacity at once and everything else when released (and
    says when a request has arrived)."""
    release, arrived = asyncio.Event(), asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/capacity":
            return web.Response(status=204, headers={CAPACITY_HEADER: "0.05"})
        arrived.set()
        await release.wait()
        return web.Response(text="late", headers={CAPACITY_HEADER: "0.5"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    yield server, release, arrived
    release.set()


async def test_a_request_waits_for_a_backend_connection_only_up_to_the_bound(
        make_gate: GateFactory, clock: FakeClock,
        hanging: tuple[TestServer, asyncio.Event, asyncio.Event]) -> None:
    server, release, arrived = hanging
    gate = await make_gate(backend_url=str(server.make_url("/")), backend_max_connections=1,
                           backend_pool_wait_s=0.05)
    await admit(gate, clock)
    first = asyncio.create_task(gate.client.get("/slow", headers={"Accept": "text/html"}))
    health = gate.app[backend_health_key]
    await arrived.wait()
    second = await gate.client.get("/api/v1/slots", headers={"Accept": "application/json"})
    assert second.status == 503
    assert second.headers["Retry-After"] == "30"
    assert (await second.json())["error"] == "backend_unavailable"
    page = await gate.client.get("/book", headers={"Accept": "text/html"})
    assert page.status == 503 and "Retry-After" in page.headers
    release.set()
    assert (await first).status == 200
    sample = health.take_sample()
    assert (sample.verdict, sample.failed, sample.busy, sample.capacity) == (
        "trouble", 2, 1.0, 0.5)


async def test_a_silent_backend_gives_the_recovering_page_in_adaptive_mode(
        make_gate: GateFactory, clock: FakeClock) -> None:
    gate = await make_gate(backend_url=f"http://127.0.0.1:{closed_port()}/")
    await admit(gate, clock)
    fixed = await gate.client.get("/book", headers={"Accept": "application/json"})
    assert fixed.status == 502  # fixed mode: as before
    await make_adaptive(gate)
    silent = await gate.client.get("/book", headers={"Accept": "application/json"})
    assert silent.status == 503 and silent.headers["Retry-After"] == "10"
    assert (await silent.json())["error"] == "backend_recovering"
    # The reporter tells the room; the room stops admitting and answers from its decision.
    decision = await gate.app[health_reporter_key].report()
    assert decision is not None and decision.backend == "down"
    await gate.tick()
    page = await gate.client.get("/book", headers={"Accept": "text/html",
                                                   "Accept-Language": "en"})
    assert page.status == 503
    assert "Paused: the booking system is recovering" in await page.text()


async def test_the_probe_tells_dead_from_idle(make_gate: GateFactory, clock: FakeClock,
                                              hanging: tuple[TestServer, asyncio.Event,
                                                             asyncio.Event]) -> None:
    dead = await make_gate(backend_url=f"http://127.0.0.1:{closed_port()}/")
    await make_adaptive(dead)
    decision = await dead.app[health_reporter_key].report()  # no traffic: it probes
    assert decision is not None and decision.backend == "down"
    server, _, _ = hanging
    alive = await make_gate(backend_url=str(server.make_url("/")))
    clock.advance(controller.DECIDE_EVERY_S)
    decision = await alive.app[health_reporter_key].report()
    assert decision is not None and decision.backend == "up"  # an answer, newer
    assert alive.app[backend_health_key].last_answer > 0


# --- the admin API ---------------------------------------------------------------------


async def test_admin_sets_and_shows_the_rate_mode(
        gate: Gate, admin: TestClient[web.Request, web.Application]) -> None:
    await gate.tick()
    response = await admin.patch("/admin/rooms/default", headers=auth(),
                                 json={"rate_mode": "adaptive", "rate_min": 5, "rate_max": 90})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["rate_mode"], body["rate_min"], body["rate_max"], body["backend"]) == (
        "adaptive", 5, 90, "up")
    shown = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert shown["rate_mode"] == "adaptive" and shown["effective_rate_per_minute"] == 60


@pytest.mark.parametrize(("change", "words"), [
    ({"rate_mode": "smart"}, "rate_mode must be one of"),
    ({"rate_min": -1}, "rate_min must be a whole number"),
    ({"rate_max": 2.5}, "rate_max must be a whole number"),
    ({"rate_min": 10, "rate_max": 5}, "must not be above rate_max"),
    ({"rate_mode": "adaptive"}, "needs a rate_max above 0"),
])
async def test_admin_refuses_bad_rate_bounds(
        gate: Gate, admin: TestClient[web.Request, web.Application],
        change: dict[str, object], words: str) -> None:
    await gate.tick()
    response = await admin.patch("/admin/rooms/default", headers=auth(), json=change)
    assert response.status == 422
    assert words in (await response.json())["message"]


async def test_admin_checks_bounds_against_the_room(
        gate: Gate, admin: TestClient[web.Request, web.Application]) -> None:
    await gate.tick()
    assert (await admin.patch("/admin/rooms/default", headers=auth(),
                              json={"rate_min": 5, "rate_max": 50})).status == 200
    response = await admin.patch("/admin/rooms/default", headers=auth(), json={"rate_min": 70})
    assert response.status == 422


# --- a visitor who leaves mid-answer is not a failing backend -------------------------


class RunAppServer(TestServer):
    """A test server whose handlers run on when their visitor goes away, as under
    queue_gate.main's AppRunner (aiohttp's test server cancels them instead)."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        kwargs["handler_cancellation"] = False
        return await super()._make_runner(**kwargs)


async def test_a_visitor_leaving_mid_answer_is_not_counted_as_the_backend_failing(
        aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
        aiohttp_server: Callable[..., Awaitable[TestServer]], redis_url: str,
        clock: FakeClock) -> None:
    """A real client reads the start of a streamed answer and closes its connection; the
    backend goes on sending. Neither the proxy's error counter nor the health window may
    call that the backend's failure (it was seen as "unreachable" once)."""
    began, visitor_left, backend_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def streaming(request: web.Request) -> web.StreamResponse:
        if request.path == CAPACITY_PATH:
            return web.Response(status=204, headers={CAPACITY_HEADER: "0.9"})
        response = web.StreamResponse(headers={CAPACITY_HEADER: "0.9"})
        await response.prepare(request)
        await response.write(b"a" * 1024)
        began.set()
        await visitor_left.wait()
        try:
            for _ in range(200):  # until the gate stops reading or the stream ends
                await response.write(b"b" * 16384)
                await asyncio.sleep(0.005)
            await response.write_eof()
        except ConnectionError:
            pass  # the gate dropped its side: also fine
        finally:
            backend_done.set()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", streaming)
    server = await aiohttp_server(app)
    registry = CollectorRegistry()
    app = create_app(gate_settings(redis_url, str(server.make_url("/"))), clock=clock,
                     registry=registry, run_ticker=False)
    gate = Gate(await aiohttp_client(RunAppServer(app)), app, registry)
    token = await admit(gate, clock)
    await make_adaptive(gate)
    health = gate.app[backend_health_key]
    health.take_sample()  # a fresh window
    reader, writer = await asyncio.open_connection(gate.client.host, gate.client.port)
    writer.write(f"GET /long HTTP/1.1\r\nHost: gate\r\nAccept: text/html\r\n"
                 f"Cookie: {PASS_COOKIE}={token}\r\n\r\n".encode())
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    await began.wait()
    writer.close()  # the visitor goes away mid-answer
    await writer.wait_closed()
    visitor_left.set()
    await backend_done.wait()
    # No event tells when the gate's handler ends (at its next write, which fails).
    while health.in_flight:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    errors = gate.registry.get_sample_value("queuegate_proxy_errors_total",
                                            {"room": "default", "reason": "unreachable"})
    assert errors is None
    sample = health.take_sample()
    assert (sample.verdict, sample.failed, sample.requests) == ("ok", 0, 1)
    assert health.last_no_answer == 0.0


async def test_a_visitor_leaving_mid_upload_is_not_counted_as_the_backend_failing(
        aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
        aiohttp_server: Callable[..., Awaitable[TestServer]], redis_url: str,
        clock: FakeClock) -> None:
    """A real client sends half of a body and closes its connection: the gate's upstream
    request fails reading the visitor's body, which is not the backend's failure."""
    receiving, backend_done = asyncio.Event(), asyncio.Event()

    async def reading(request: web.Request) -> web.Response:
        receiving.set()
        try:
            await request.read()
        finally:
            backend_done.set()
        return web.Response(text="read")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", reading)
    server = await aiohttp_server(app)
    registry = CollectorRegistry()
    gate_app = create_app(gate_settings(redis_url, str(server.make_url("/"))), clock=clock,
                          registry=registry, run_ticker=False)
    gate = Gate(await aiohttp_client(RunAppServer(gate_app)), gate_app, registry)
    token = await admit(gate, clock)
    health = gate.app[backend_health_key]
    health.take_sample()
    _reader, writer = await asyncio.open_connection(gate.client.host, gate.client.port)
    writer.write(f"POST /upload HTTP/1.1\r\nHost: gate\r\nAccept: application/json\r\n"
                 f"Content-Length: 100000\r\n{PASS_HEADER}: {token}\r\n\r\n".encode()
                 + b"x" * 1000)
    await writer.drain()
    await receiving.wait()  # the gate is streaming the body to the backend
    writer.close()  # the visitor goes away mid-upload
    await writer.wait_closed()
    await backend_done.wait()
    # No event tells when the gate's handler ends (its upstream request fails).
    while health.in_flight:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    for reason in ("unreachable", "timeout"):
        assert gate.registry.get_sample_value(
            "queuegate_proxy_errors_total", {"room": "default", "reason": reason}) is None
    sample = health.take_sample()
    assert (sample.verdict, sample.failed) == ("idle", 0)
    assert health.last_no_answer == 0.0


# --- a hanging backend: seen from the requests in flight --------------------------------


@pytest.fixture
async def silent(aiohttp_server: Callable[..., Awaitable[TestServer]]
                 ) -> AsyncIterator[tuple[TestServer, asyncio.Event, asyncio.Event]]:
    """A backend that accepts connections and answers nothing, on any path (the probe's
    too), until the test lets it go (and says when a request has arrived)."""
    release, arrived = asyncio.Event(), asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="late", headers={CAPACITY_HEADER: "0.9"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    yield server, release, arrived
    release.set()


async def test_a_hanging_backend_stops_admissions_and_the_pass_holder_books_after(
        make_gate: GateFactory, clock: FakeClock,
        silent: tuple[TestServer, asyncio.Event, asyncio.Event]) -> None:
    server, release, arrived = silent
    bound = 0.05  # the latency target: how long a request waits before silence counts
    gate = await make_gate(backend_url=str(server.make_url("/")),
                           backend_latency_target_s=bound)
    token = await admit(gate, clock)
    await make_adaptive(gate, low=30, start=60)
    waiting = [(await join(gate))["ticket"] for _ in range(5)]
    health, reporter = gate.app[backend_health_key], gate.app[health_reporter_key]
    health.take_sample()
    pass_holder = {PASS_HEADER: token, "Accept": "application/json"}
    booking = asyncio.create_task(gate.client.post("/book", headers=pass_holder))
    await arrived.wait()
    await asyncio.sleep(2 * bound)  # let the request wait past the bound (real time)
    # Nothing ended (no timeout, no refusal, no probe): the request in flight tells.
    assert health.check_hang()
    assert not health.check_hang()  # once per silence
    assert not health.needs_probe()  # a probe would hang too
    decision = await reporter.report()
    assert decision is not None and decision.backend == "down"
    await gate.tick()
    admitted = gate.app[room_view_key].snapshot
    assert admitted is not None
    clock.advance(30)  # at 30 to 60 a minute, every waiting visitor's turn would come
    await gate.tick()
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.backend_down
    assert snapshot.admitted == admitted.admitted  # no admission while it answers nothing
    code, body = await status(gate, waiting[0])
    assert (code, body["state"]) == (200, "recovering")
    again = await gate.client.get("/book", headers=pass_holder)
    assert again.status == 503 and again.headers["Retry-After"] == "10"
    assert (await again.json())["error"] == "backend_recovering"
    # The backend comes back: the held request is answered, the room admits again, and
    # the pass holder's pass is good.
    release.set()
    assert (await booking).status == 200
    decision = await reporter.report()
    assert decision is not None and decision.backend == "up"
    clock.advance(5)
    await gate.tick()
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.admitted > admitted.admitted
    assert (await gate.client.get("/book", headers=pass_holder)).status == 200


async def test_a_slow_answer_while_others_answer_is_no_hang(
        make_gate: GateFactory, clock: FakeClock,
        silent: tuple[TestServer, asyncio.Event, asyncio.Event]) -> None:
    server, release, arrived = silent
    gate = await make_gate(backend_url=str(server.make_url("/")),
                           backend_latency_target_s=0.05)
    token = await admit(gate, clock)
    health = gate.app[backend_health_key]
    slow = asyncio.create_task(gate.client.get("/slow", headers={PASS_HEADER: token}))
    await arrived.wait()
    await asyncio.sleep(0.1)
    health.record_answer(0.01, False, 0.9)  # another request was just answered
    assert not health.check_hang()
    release.set()
    assert (await slow).status == 200
    assert not health.check_hang()  # nothing in flight


async def test_a_long_answer_streaming_is_no_hang(make_gate: GateFactory, clock: FakeClock,
                                                  aiohttp_server: Callable[
                                                      ..., Awaitable[TestServer]]) -> None:
    """A response whose headers came and whose body is still streaming is answered: only
    requests waiting for an answer count towards a hang."""
    began, finish = asyncio.Event(), asyncio.Event()

    async def streaming(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={CAPACITY_HEADER: "0.9"})
        await response.prepare(request)
        await response.write(b"begun")
        began.set()
        await finish.wait()
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", streaming)
    server = await aiohttp_server(app)
    gate = await make_gate(backend_url=str(server.make_url("/")),
                           backend_latency_target_s=0.05)
    token = await admit(gate, clock)
    health = gate.app[backend_health_key]
    stream = asyncio.create_task(gate.client.get("/events", headers={PASS_HEADER: token}))
    await began.wait()
    await asyncio.sleep(0.1)  # past the bound, with nothing else answered meanwhile
    assert health.in_flight == 1 and not health.check_hang()
    finish.set()
    assert (await stream).status == 200
