"""PostgreSQL killed with `kill -9` in the middle of bookings, then restarted: every booking
that got its confirmation answer is there afterwards, and while the database is down the API
answers 503 with Retry-After, never a 500.

Real processes: a durable private PostgreSQL (fsync and synchronous commit on, as in
production), the backend as `python -m booking_backend.main`, its webhook sender posting to
a small gateway this test serves. People book with the API as a phone app would, retrying a
step that answered 503.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from booking_backend.migrations import migrate
from devtools.processes import HOST, ManagedProcess, free_port
from devtools.servers import LocalServer, postgres_server
from tests.booking_backend.conftest import BERLIN, HOME_POSTCODE, OLD, SECRET
from vaccine_queue.contract import PASS_HEADER, AdmissionPass, PassCodec

ADMIN = "fault-admin-token"
PEOPLE = 16
WORKERS = 8
KILL_AFTER = 3
CODE = re.compile(r"\b\d{6}\b")


class Gateway:
    """The SMS gateway: keeps each person's messages; a person waits for their code."""

    def __init__(self) -> None:
        self.codes: dict[str, list[str]] = {}
        self.arrived = asyncio.Condition()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["kind"] == "code":
            match = CODE.search(body["text"])
            assert match is not None
            async with self.arrived:
                self.codes.setdefault(body["to"], []).append(match.group(0))
                self.arrived.notify_all()
        return web.Response(status=204)

    async def code_for(self, address: str) -> str:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: address in self.codes), 60)
            return self.codes[address][-1]


@pytest.fixture
def durable_postgres() -> Iterator[LocalServer]:
    with postgres_server(durable=True) as server:
        yield server


def headers(person: int) -> dict[str, str]:
    token = PassCodec((SECRET,)).sign(AdmissionPass("main", f"fault-{person}", 2**40))
    return {PASS_HEADER: token}


class Client:
    """Every answer the people got, and the bookings they were told of."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.statuses: list[int] = []
        self.unavailable: list[str | None] = []  # Retry-After of each 503
        self.booked: dict[int, str] = {}
        self.some_booked = asyncio.Event()  # set once KILL_AFTER bookings were answered

    async def call(self, method: str, path: str, person: int,
                   body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One request; a 503 is retried after a moment, as a patient app does."""
        for _ in range(600):
            try:
                async with self.session.request(method, self.base + path, json=body,
                                                headers=headers(person)) as response:
                    status, answer = response.status, await response.json()
                    retry_after = response.headers.get("Retry-After")
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
                continue
            self.statuses.append(status)
            if status != 503:
                return status, answer
            self.unavailable.append(retry_after)
            await asyncio.sleep(0.1)
        raise AssertionError(f"{path} stayed unavailable")

    async def book(self, person: int, pair: tuple[str, str], gateway: Gateway) -> None:
        status, held = await self.call("POST", "/api/v1/holds", person, {
            "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": pair[0],
            "second_slot": pair[1]})
        assert status == 201, held
        hid = held["hold_id"]
        contact = f"+491517000{person:04d}"
        status, answer = await self.call("POST", f"/api/v1/holds/{hid}/details", person,
                                         {"name": f"Person {person}", "contact": contact})
        assert status == 202, answer
        code = await gateway.code_for(contact)
        status, booking = await self.call("POST", f"/api/v1/holds/{hid}/confirm", person,
                                          {"code": code})
        # 200: a confirmation retried after an answer lost with the database is the same.
        assert status in (200, 201), booking
        self.booked[person] = booking["booking_code"]
        if len(self.booked) >= KILL_AFTER:
            self.some_booked.set()


async def test_killed_postgres_loses_no_confirmed_booking(
    durable_postgres: LocalServer,
) -> None:
    url = durable_postgres.url
    await migrate(url)
    gateway = Gateway()
    hook = web.Application()
    hook.router.add_post("/messages", gateway.receive)
    hook_server = TestServer(hook, host=HOST)
    await hook_server.start_server()
    port, admin_port = free_port(), free_port()
    env = {
        "BOOKING_DATABASE_URL": url, "QUEUE_GATE_SECRETS": SECRET,
        "BOOKING_ADMIN_TOKEN": ADMIN, "BOOKING_IDENTITY_KEY": "fault-identity-key",
        "BOOKING_SENDER": "webhook",
        "BOOKING_WEBHOOK_URL": str(hook_server.make_url("/messages")),
        "BOOKING_DATABASE_ACQUIRE_TIMEOUT_SECONDS": "2",
        "BOOKING_DATABASE_STATEMENT_TIMEOUT_SECONDS": "3",
        "BOOKING_OUTBOX_POLL_SECONDS": "0.2", "BOOKING_COOKIE_SECURE": "0",
    }
    with tempfile.TemporaryDirectory(prefix="fault-backend-") as tmp:
        backend = ManagedProcess.start(
            "booking-backend",
            [sys.executable, "-m", "booking_backend.main", "--host", HOST, "--port", str(port),
             "--admin-host", HOST, "--admin-port", str(admin_port)],
            log_path=Path(tmp) / "backend.log", env=env)
        try:
            backend.wait_for_port(port)
            backend.wait_for_port(admin_port)
            await run_the_rush(durable_postgres, gateway, f"http://{HOST}:{port}",
                               f"http://{HOST}:{admin_port}")
        finally:
            backend.stop()
            await hook_server.close()
        assert "Traceback" not in backend.log_tail(200_000), backend.log_tail()


async def run_the_rush(postgres: LocalServer, gateway: Gateway, base: str,
                       admin_base: str) -> None:
    tomorrow = dt.datetime.now(BERLIN).date() + dt.timedelta(days=2)
    first = int(dt.datetime(tomorrow.year, tomorrow.month, tomorrow.day, 8,
                            tzinfo=BERLIN).timestamp())
    second = first + 21 * 86400
    pairs = [(f"braunschweig@{first + 600 * i}", f"braunschweig@{second + 600 * i}")
             for i in range(PEOPLE)]
    auth = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(admin_base + "/admin/catalogue/demo", headers=auth) as resp:
            assert resp.status == 200
        slots = [{"centre": "braunschweig", "start": start, "capacity": 1}
                 for i in range(PEOPLE) for start in (first + 600 * i, second + 600 * i)]
        async with session.post(admin_base + "/admin/slots", headers=auth,
                                json={"slots": slots, "waitlist_share": 0}) as resp:
            assert resp.status == 200, await resp.text()
        client = Client(session, base)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for person in range(PEOPLE):
            queue.put_nowait(person)

        async def worker() -> None:
            while not queue.empty():
                person = queue.get_nowait()
                await client.book(person, pairs[person], gateway)

        workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
        # Mid-rush: once some bookings stand, PostgreSQL is killed as a crash would end it.
        await asyncio.wait_for(client.some_booked.wait(), 120)
        told_before_kill = dict(client.booked)
        postgres.process.kill()
        # While it is down: an honest 503 with Retry-After, never a 500.
        async with session.post(base + "/api/v1/bookings/lookup", headers=headers(999),
                                json={"booking_code": told_before_kill[min(told_before_kill)],
                                      "birth_date": OLD}) as resp:
            assert resp.status == 503
            assert int(resp.headers["Retry-After"]) > 0
        assert postgres.restart is not None
        await asyncio.to_thread(postgres.restart)
        await asyncio.gather(*workers)

        assert 500 not in client.statuses
        assert {s for s in client.statuses if s >= 500} <= {503}
        assert client.unavailable and all(r and int(r) > 0 for r in client.unavailable)
        assert len(client.booked) == PEOPLE
        # Every booking someone was told of is there after the crash.
        for person, code in client.booked.items():
            async with session.post(base + "/api/v1/bookings/lookup", headers=headers(person),
                                    json={"booking_code": code, "birth_date": OLD}) as resp:
                assert resp.status == 200, (person, await resp.text())
                assert (await resp.json())["status"] == "active"
