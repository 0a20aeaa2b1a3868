"""The real services on loopback, run in a thread of their own, and a short rush through them.

Prometheus scrapes the admin apps while the tests query it, so the apps must keep answering
between and during tests: they live on an event loop in a background thread, not on the
tests' loop (which only runs while a test awaits).

Processes of the stack (all in this Python process, each with its own registry, as separate
processes would have):
- gates A and B: room "default", both on the private Redis, in front of the backend;
- gate C: the same room, cut off from Redis and from the backend (a machine that lost its
  network): its ticker fails, and a visitor admitted elsewhere who reaches it gets a 502,
  so the Redis-error and proxy-error panels and alerts have something to show;
- the real booking backend (public and admin app, one process) with the demo centres and
  generated slots, and a stand-in SMS/e-mail gateway that records every message and refuses
  some first delivery attempts, so retries, delivery delays and a backlog show. Holds and
  codes are short-lived, so those people walk away from expire within the rush.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import re
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from booking_backend.main import create_admin_app as create_booking_admin_app
from booking_backend.main import create_app as create_booking_app
from booking_backend.migrations import migrate
from booking_backend.settings import Settings as BookingSettings
from booking_backend.verification import DeliveryFailed, Message
from devtools.processes import free_port
from queue_gate.admin import create_admin_app
from queue_gate.main import create_app
from queue_gate.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

SECRET = "ops-test-secret-0123456789"
ADMIN_TOKEN = "ops-test-admin-token"
BOOKING_ADMIN_TOKEN = "ops-test-booking-admin-token"
ROOM = "default"
RATE_PER_MINUTE = 240  # 4 a second: the line grows while 10 a second arrive
ARRIVALS_PER_S = 10.0
RUSH_S = 18.0  # the measured rate needs 10 s of backlog; keep the whole test under a minute
OPENS_IN_S = 3.0  # the pre-queue's opening draw happens this long into the rush
POLL_S = 1.0
POSTCODE = "38100"  # Braunschweig, in the backend's demo catalogue
HOME_CENTRE = "braunschweig"
HOLD_S = 12  # short, so the holds people walk away from expire within the test
CODE_VALIDITY_S = 6  # short, so the codes people never enter expire within the test
CODE = re.compile(r"\b\d{6}\b")


@dataclass
class Service:
    """One process of the stack: its public and admin address."""

    name: str
    public_port: int
    admin_port: int
    runners: list[web.AppRunner] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.admin_port}"


@dataclass
class RushReport:
    refused: int = 0
    joined: int = 0
    admitted: int = 0
    left: int = 0
    forwarded: dict[int, int] = field(default_factory=dict)  # backend status -> count
    proxy_failures: int = 0
    rejected: int = 0
    holds_abandoned: int = 0
    codes_abandoned: int = 0
    # When (time.monotonic()) the first walked-away hold and unused code will have run out:
    # the rush's end waits for them, so their expiry is counted on a slow machine too.
    first_hold_expires: float | None = None
    first_code_expires: float | None = None
    booked: int = 0
    cancelled: int = 0
    waitlisted: int = 0
    bypass_refused: int = 0
    waiting_at_end: int = 0

    def forwarded_class(self, status_class: int) -> int:
        return sum(n for status, n in self.forwarded.items() if status // 100 == status_class)


@dataclass
class Booked:
    code: str
    birth_date: str
    address: str


class Gateway:
    """The SMS/e-mail gateway stand-in: keeps every message; refuses the first attempt for
    every fifth address (the outbox retries after its backoff)."""

    name = "gateway"

    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], list[str]] = {}
        self._refused: set[str] = set()
        self._arrived = asyncio.Condition()  # binds to the stack's loop at first use

    async def send(self, message: Message) -> None:
        address = message.contact.address
        if sum(map(ord, address)) % 5 == 0 and message.mid not in self._refused:
            self._refused.add(message.mid)
            raise DeliveryFailed("gateway busy, try again")
        async with self._arrived:
            self.messages.setdefault((address, message.kind), []).append(message.text)
            self._arrived.notify_all()

    async def code(self, address: str, kind: str, seen: int) -> str:
        """The code of the message after the first `seen` of this kind to this address."""
        async with asyncio.timeout(15), self._arrived:
            await self._arrived.wait_for(lambda: self.count(address, kind) > seen)
        match = CODE.search(self.messages[(address, kind)][seen])
        assert match is not None
        return match.group(0)

    def count(self, address: str, kind: str) -> int:
        return len(self.messages.get((address, kind), []))


class Stack:
    """Gates A, B and C on a private Redis and the backend on a private PostgreSQL, on a
    loop in a background thread."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        self.redis_url = redis_url
        self.database_url = database_url
        self.backend = Service("backend", free_port(), free_port())
        self.gates = [Service(name, free_port(), free_port()) for name in ("a", "b")]
        self.cut_off = Service("c", free_port(), free_port())
        self.gateway = Gateway()
        self.bookings: list[Booked] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ops-stack",
                                        daemon=True)
        self._session: aiohttp.ClientSession | None = None

    @property
    def gate_targets(self) -> list[str]:
        return [s.target for s in (*self.gates, self.cut_off)]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coro` on the stack's loop and wait for its result here."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    def stop(self) -> None:
        try:
            self.run(self._stop(), timeout=120)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def gate_settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "redis_url": self.redis_url,
            "backend_url": self.backend.public_url,
            "secrets": (SECRET,),
            "admin_token": ADMIN_TOKEN,
            "room": ROOM,
            "cookie_secure": False,
            "initial_mode": "closed",  # before 8:00: the room exists, nobody gets a place
            "initial_rate_per_minute": RATE_PER_MINUTE,
            "poll_min_s": 0.5,
            "poll_max_s": 2.0,
            # Visitors who stop polling are passed over after 4 s (the least allowed).
            "abandon_grace_s": 4.0,
            "backend_timeout_s": 5.0,
            # The rush's visitors all come from 127.0.0.1 and join before the opening.
            "draw_limit": 0,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def booking_settings(self) -> BookingSettings:
        # Its own PostgreSQL, as in compose.yaml.
        return BookingSettings(
            database_url=self.database_url,
            secrets=(SECRET,), admin_token=BOOKING_ADMIN_TOKEN, identity_key="ops-identity",
            pass_room=ROOM, hold_seconds=HOLD_S, code_validity_seconds=CODE_VALIDITY_S,
            sweep_seconds=1.0, outbox_poll_seconds=0.5,
        )

    async def _serve(self, service: Service, public: web.Application,
                     admin: web.Application) -> None:
        for app, port in ((public, service.public_port), (admin, service.admin_port)):
            # A short graceful shutdown: the stack stops seven servers in one teardown, and
            # aiohttp's default (60 s each for open connections) once ran past its bound.
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
            await runner.setup()
            service.runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", port).start()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=20),
        )
        await migrate(self.database_url)
        booking = create_booking_app(self.booking_settings(), registry=CollectorRegistry(),
                                     sender=self.gateway)
        await self._serve(self.backend, booking, create_booking_admin_app(public_app=booking))
        for gate in self.gates:
            app = create_app(self.gate_settings(), registry=CollectorRegistry())
            await self._serve(gate, app, create_admin_app(app))
        dead_redis, dead_backend = free_port(), free_port()
        cut_off = create_app(
            self.gate_settings(redis_url=f"redis://127.0.0.1:{dead_redis}/0",
                               backend_url=f"http://127.0.0.1:{dead_backend}"),
            registry=CollectorRegistry())
        await self._serve(self.cut_off, cut_off, create_admin_app(cut_off))
        await self._load_centres_and_slots()

    async def _load_centres_and_slots(self) -> None:
        """The morning's preparation: the centres and six weeks of slots (three a day)."""
        auth = {"Authorization": f"Bearer {BOOKING_ADMIN_TOKEN}"}
        admin = self.backend.admin_url
        status, body = await self.request("POST", f"{admin}/admin/catalogue/demo", headers=auth)
        assert status == 200, body
        status, body = await self.request(
            "POST", f"{admin}/admin/slots/generate", headers=auth,
            json={"days": 45, "units": 2, "step_minutes": 240})
        assert status == 200 and body["units_added"] > 0, body

    async def _stop(self) -> None:
        for service in (self.cut_off, *reversed(self.gates), self.backend):
            # The admin app uses the public app's resources: stop it first.
            for runner in reversed(service.runners):
                await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # --- HTTP helpers ----------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def request(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        async with self.session.request(method, url, headers=headers, **kwargs) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except json.JSONDecodeError:
                return response.status, text

    async def admin(self, method: str, path: str, body: dict[str, object] | None = None,
                    ) -> tuple[int, Any]:
        return await self.request(method, f"{self.gates[0].admin_url}{path}", json=body,
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    async def metrics_text(self, service: Service) -> str:
        async with self.session.get(f"{service.admin_url}/metrics") as response:
            assert response.status == 200
            return await response.text()

    # --- the rush --------------------------------------------------------------------------

    def rush(self) -> RushReport:
        return self.run(self._rush(), timeout=RUSH_S + 40)

    async def _rush(self) -> RushReport:
        report = RushReport()
        rng = random.Random(20210108)  # the Niedersachsen morning
        a = self.gates[0]
        # Before opening: the room is closed, arrivals are turned away politely.
        for _ in range(3):
            status, _body = await self.request("POST", f"{a.public_url}/queue/api/join")
            assert status == 409, (status, _body)
            report.refused += 1
        # Someone tries to skip the line with made-up tokens, or to go round the gate.
        status, _body = await self.request(
            "GET", f"{a.public_url}/queue/api/status",
            headers={"Authorization": "Bearer not-a-real-ticket"})
        assert status == 401
        status, _body = await self.request("POST", f"{a.public_url}/api/v1/offers",
                                           headers={"X-Queue-Pass": "not-a-real-pass"})
        assert status == 401
        report.rejected += 2
        status, _body = await self.request("POST", f"{self.backend.public_url}/api/v1/offers",
                                           json={"birth_date": "1939-01-01",
                                                 "postcode": POSTCODE})
        assert status == 403, (status, _body)
        report.bypass_refused += 1
        # 7:30: the operator opens the pre-queue; arrivals until the opening time are
        # given their places by lot at the opening.
        # Whole seconds, as operators write it (with a fraction the gate answered 500 to
        # pre-queue joins: reported).
        opens_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=OPENS_IN_S)).replace(
            microsecond=0)
        status, body = await self.admin("PATCH", f"/admin/rooms/{ROOM}",
                                        {"mode": "queue", "opens_at": opens_at.isoformat()})
        assert status == 200 and body["mode"] == "queue", body

        tasks: list[asyncio.Task[None]] = []
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < RUSH_S:
            tasks.append(asyncio.create_task(self._visitor(i, report)))
            i += 1
            await asyncio.sleep(rng.expovariate(ARRIVALS_PER_S))
        # The rush is over; whoever is still in line stays there (the tests read the room).
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in results
                    if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        assert not failures, failures[:3]
        _status, room = await self.admin("GET", f"/admin/rooms/{ROOM}")
        report.waiting_at_end = int(room["waiting"])
        # The first hold and code people walked away from run out (at most HOLD_S after the
        # rush on a slow machine), the sweeper counts them (every second), then two more
        # scrapes bring the last counts to Prometheus.
        ends = [t for t in (report.first_hold_expires, report.first_code_expires) if t]
        await asyncio.sleep(max([0.0, *(t - time.monotonic() for t in ends)]) + 1.5)
        await asyncio.sleep(2.5)
        return report

    async def _visitor(self, i: int, report: RushReport) -> None:
        """Join, poll until admitted (or give up), then book, join the waiting list, cancel
        an earlier booking, or walk away from a hold, as people do. Who does what is fixed
        by `i`, so every run has each kind of visitor early enough to be seen."""
        role = i % 10
        gate = self.gates[i % 2]
        status, body = await self.request("POST", f"{gate.public_url}/queue/api/join")
        assert status == 201, (status, body)
        report.joined += 1
        ticket = body["ticket"]
        polls = 0
        while body["state"] != "admitted":
            if role == 0 and polls >= 2:
                report.left += 1  # closed the tab before their turn
                return
            await asyncio.sleep(min(float(body["poll_after_s"]), POLL_S))
            # Polls land on either gate, as behind a load balancer.
            gate = self.gates[(i + polls) % 2]
            polls += 1
            status, body = await self.request(
                "GET", f"{gate.public_url}/queue/api/status",
                headers={"Authorization": f"Bearer {ticket}"})
            assert status == 200, (status, body)
            ticket = body.get("ticket", ticket)
        report.admitted += 1
        visitor = Visitor(self, gate, body["pass"], i, report)
        if i % 20 == 11:
            # The only way to this gate's twin is a machine that lost its network.
            status, _body = await self.request("POST", f"{self.cut_off.public_url}/api/v1/offers",
                                               headers=visitor.headers)
            assert status == 502, (status, _body)
            report.proxy_failures += 1
        if role == 3:
            # Some walk away only after their code arrived: it expires unused.
            await visitor.hold_and_walk_away(with_code=i % 20 == 3)
        elif role == 5:
            await visitor.join_waiting_list()
        elif role == 7 and self.bookings:
            await visitor.cancel(self.bookings.pop(0))
        else:
            await visitor.book(wrong_code_first=role == 9)
            if role in (8, 9):
                # The session ended with the booking: the same pass no longer works.
                status, _body = await self.request("POST", f"{gate.public_url}/api/v1/offers",
                                                   headers=visitor.headers)
                assert status == 401, (status, _body)
                report.rejected += 1


class Visitor:
    """One admitted person using the booking API through the gate with their pass."""

    def __init__(self, stack: Stack, gate: Service, admission: str, i: int,
                 report: RushReport) -> None:
        self.stack, self.gate, self.report = stack, gate, report
        self.headers = {"X-Queue-Pass": admission}
        self.person = {"birth_date": f"19{30 + i % 10}-0{1 + i % 9}-1{i % 10}",
                       "postcode": POSTCODE}
        self.name = f"Visitor {i}"
        # Half by SMS, half by e-mail, as the backend normalises them.
        self.address = f"+49151{i:07d}" if i % 2 else f"visitor{i}@example.org"
        self.i = i

    async def api(self, method: str, path: str, body: dict[str, Any] | None = None,
                  ) -> tuple[int, Any]:
        status, answer = await self.stack.request(
            method, f"{self.gate.public_url}/api/v1{path}", json=body, headers=self.headers)
        self.report.forwarded[status] = self.report.forwarded.get(status, 0) + 1
        return status, answer

    async def hold(self) -> str:
        """Hold a pair at the home district's centre (where the waiting list of the same
        district gets cancelled pairs); when others were faster, look again."""
        for _attempt in range(5):
            status, body = await self.api("POST", "/offers", self.person)
            assert status == 200, (status, body)
            offers = [o for o in body["offers"] if o["centre"] == HOME_CENTRE]
            assert offers, body
            for k in range(len(offers)):
                offer = offers[(self.i + k) % len(offers)]
                status, body = await self.api("POST", "/holds", {
                    **self.person, "first_slot": offer["first"]["slot"],
                    "second_slot": offer["second"]["slot"]})
                if status == 201:
                    hold_id: str = body["hold_id"]
                    return hold_id
                assert status == 409, (status, body)  # someone was faster: take another pair
        raise AssertionError("no pair could be held")

    async def hold_and_walk_away(self, *, with_code: bool) -> None:
        hold_id = await self.hold()
        self.report.holds_abandoned += 1
        if self.report.first_hold_expires is None:
            self.report.first_hold_expires = time.monotonic() + HOLD_S
        if with_code:
            seen = self.stack.gateway.count(self.address, "code")
            status, body = await self.api("POST", f"/holds/{hold_id}/details",
                                          {"name": self.name, "contact": self.address})
            assert status == 202, (status, body)
            await self.stack.gateway.code(self.address, "code", seen)
            self.report.codes_abandoned += 1
            if self.report.first_code_expires is None:
                self.report.first_code_expires = time.monotonic() + CODE_VALIDITY_S

    async def book(self, *, wrong_code_first: bool) -> None:
        hold_id = await self.hold()
        seen = self.stack.gateway.count(self.address, "code")
        status, body = await self.api("POST", f"/holds/{hold_id}/details",
                                      {"name": self.name, "contact": self.address})
        assert status == 202, (status, body)
        code = await self.stack.gateway.code(self.address, "code", seen)
        if wrong_code_first:
            # A wrong code is "wrong" once the backend has recorded the delivery; in the
            # moment between the gateway taking the message and that record it is "still on
            # its way" (docs/booking.md). An app shows "code sent" from the hold's state.
            await self.until_delivered(hold_id)
            status, body = await self.api("POST", f"/holds/{hold_id}/confirm",
                                          {"code": "000000" if code != "000000" else "111111"})
            assert status == 422, (status, body)
        status, body = await self.api("POST", f"/holds/{hold_id}/confirm", {"code": code})
        assert status == 201, (status, body)
        self.report.booked += 1
        self.stack.bookings.append(Booked(body["booking_code"], self.person["birth_date"],
                                          self.address))

    async def until_delivered(self, hold_id: str) -> None:
        async with asyncio.timeout(15):
            while True:
                status, body = await self.api("GET", f"/holds/{hold_id}")
                assert status == 200, (status, body)
                if body["verification"]["delivered"]:
                    return
                await asyncio.sleep(0.05)

    async def join_waiting_list(self) -> None:
        status, body = await self.api("POST", "/waitlist", {
            **self.person, "name": self.name, "contact": self.address})
        assert status == 201, (status, body)
        self.report.waitlisted += 1

    async def cancel(self, booked: Booked) -> None:
        """The person who booked comes back (through the queue) to cancel."""
        ref = {"booking_code": booked.code, "birth_date": booked.birth_date}
        seen = self.stack.gateway.count(booked.address, "cancel_code")
        status, body = await self.api("POST", "/bookings/cancel-code", ref)
        assert status == 202, (status, body)
        code = await self.stack.gateway.code(booked.address, "cancel_code", seen)
        status, body = await self.api("POST", "/bookings/cancel", {**ref, "code": code})
        assert status == 200, (status, body)
        self.report.cancelled += 1
