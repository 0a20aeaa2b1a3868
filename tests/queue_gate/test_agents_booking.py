"""Done when (issue 13): an agent books three times in a row without queueing; the public
cannot use an agent pass. Through a real gate to the real booking backend on its own port,
with a private PostgreSQL and Redis."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from booking_backend import keys as booking_keys
from booking_backend.backend import Backend
from booking_backend.main import create_admin_app as create_booking_admin_app
from booking_backend.main import create_app as create_booking_app
from booking_backend.settings import Settings as BookingSettings
from queue_gate.admin import create_admin_app
from tests.booking_backend.conftest import (
    CENTRE,
    HOME_POSTCODE,
    OLD,
    FakeClock,
    RecordingSender,
    contact_address,
    pair_slots,
)
from tests.queue_gate.conftest import ADMIN_TOKEN, SECRET, Gate, GateFactory, auth
from vaccine_queue.contract import END_SESSION_HEADER, PASS_COOKIE, PASS_HEADER

AGENT_BROWSER = {"User-Agent": "Mozilla/5.0 (call centre desk 7)", "Accept": "application/json"}
CALLERS = (("Erika Muster", "+4915100000001"), ("Hans Meier", "+4915100000002"),
           ("Grete Schulz", "+4915100000003"))


@dataclasses.dataclass
class Booking:
    backend: Backend
    sender: RecordingSender
    server: TestServer


@pytest.fixture
async def booking(database_url: str, aiohttp_server: Callable[..., Awaitable[TestServer]],
                  aiohttp_client: Callable[..., Awaitable[TestClient[web.Request,
                                                                     web.Application]]]
                  ) -> Booking:
    """The real booking backend on a port of its own, checking passes with the gate's
    secret, with the demo catalogue."""
    settings = BookingSettings(
        database_url=database_url, deployment="test", secrets=(SECRET,),
        admin_token=ADMIN_TOKEN, identity_key="test-identity-key", outbox_worker=False,
        sweep_seconds=3600, hold_seconds=600, code_validity_seconds=600,
        code_resend_seconds=60, cookie_secure=False, pass_room="default")
    sender = RecordingSender()
    app = create_booking_app(settings, clock=FakeClock(), sender=sender,
                             registry=CollectorRegistry())
    server = await aiohttp_server(app)
    admin = await aiohttp_client(create_booking_admin_app(public_app=app))
    async with admin.post("/admin/catalogue/demo", headers=auth()) as resp:
        assert resp.status == 200
    return Booking(app[booking_keys.backend_key], sender, server)


async def call(gate: Gate, method: str, path: str, token: str, *,
               headers: dict[str, str] | None = None,
               body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    gate.client.session.cookie_jar.clear()
    async with gate.client.request(method, path, json=body, allow_redirects=False,
                                   headers={PASS_HEADER: token, **AGENT_BROWSER,
                                            **(headers or {})}) as resp:
        assert END_SESSION_HEADER not in resp.headers  # the gate's, never passed on
        answer: dict[str, Any] = await resp.json()
        return resp.status, answer


async def test_an_agent_books_three_times_in_a_row_and_the_public_cannot_use_the_pass(
        make_gate: GateFactory, booking: Booking,
        aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
) -> None:
    gate = await make_gate(backend_url=str(booking.server.make_url("/")),
                           initial_rate_per_minute=0)  # the citizens' line does not move
    await gate.tick()
    admin = await aiohttp_client(create_admin_app(gate.app))
    async with admin.post("/admin/rooms/default/agent-passes",
                          json={"agent": "Anna Schmidt", "hours": 8}, headers=auth()) as resp:
        assert resp.status == 201
        token = (await resp.json())["pass"]
    async with admin.post("/admin/rooms/default/agent-passes",
                          json={"agent": "Ben Weber", "hours": 8}, headers=auth()) as resp:
        colleague = (await resp.json())["pass"]
    catalogue = await booking.backend.service.catalogue()
    pairs = [pair_slots(CENTRE, i) for i in range(len(CALLERS))]
    await booking.backend.inventory.release_slots(
        catalogue.centres[CENTRE], [(slot, 1) for pair in pairs for slot in pair])

    codes = []
    for (name, phone), (first, second) in zip(CALLERS, pairs, strict=True):
        status, hold = await call(gate, "POST", "/api/v1/holds", token, body={
            "birth_date": OLD, "postcode": HOME_POSTCODE,
            "first_slot": first.id, "second_slot": second.id})
        assert status == 201, hold
        hid = hold["hold_id"]
        # The backend keys holds by the pass's id: a colleague's pass does not reach it.
        status, _ = await call(gate, "GET", f"/api/v1/holds/{hid}", colleague,
                               headers={"User-Agent": "Mozilla/5.0 (call centre desk 8)"})
        assert status == 404
        status, body = await call(gate, "POST", f"/api/v1/holds/{hid}/details", token,
                                  body={"name": name, "contact": phone})
        assert status == 202, body
        await booking.backend.outbox.run_once()
        code = booking.sender.last_code(contact_address(phone))
        status, confirmed = await call(gate, "POST", f"/api/v1/holds/{hid}/confirm", token,
                                       body={"code": code})
        assert status == 201, confirmed
        codes.append(confirmed["booking_code"])
    assert len(set(codes)) == 3
    assert gate.registry.get_sample_value("queuegate_passes_ended_total",
                                          {"room": "default"}) is None
    assert gate.registry.get_sample_value("queuegate_agent_requests_total",
                                          {"room": "default"}) == 12  # 3 x 4 (one a colleague's)

    # The same pass in a citizen's browser: refused at the gate, before the backend.
    status, body = await call(gate, "GET", "/api/v1/groups", token,
                              headers={"User-Agent": "Mozilla/5.0 (at home)"})
    assert (status, body["error"]) == (403, "agent_pass_shared")
    status, body = await call(gate, "POST", "/api/v1/holds", token,
                              headers={"User-Agent": "Mozilla/5.0 (at home)"}, body={})
    assert (status, body["error"]) == (403, "agent_pass_shared")
    # Revoked at the end of the shift: the agent is turned back too.
    async with admin.get("/admin/rooms/default/agent-passes", headers=auth()) as resp:
        [listed] = [entry for entry in (await resp.json())["agent_passes"]
                    if entry["agent"] == "Anna Schmidt"]
    async with admin.delete(f"/admin/rooms/default/agent-passes/{listed['id']}",
                            headers=auth()) as resp:
        assert resp.status == 200
    status, body = await call(gate, "GET", "/api/v1/groups", token)
    assert (status, body["error"]) == (403, "agent_pass_ended")


async def test_an_agent_books_three_callers_in_a_row_through_the_pages(
        make_gate: GateFactory, booking: Booking,
        aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
) -> None:
    """The agent's browser without JavaScript, the pass in its cookie jar: after each
    confirmation (which ends a citizen's session) the next caller starts at the start page."""
    gate = await make_gate(backend_url=str(booking.server.make_url("/")),
                           initial_rate_per_minute=0)
    await gate.tick()
    admin = await aiohttp_client(create_admin_app(gate.app))
    async with admin.post("/admin/rooms/default/agent-passes",
                          json={"agent": "Anna Schmidt", "hours": 8}, headers=auth()) as resp:
        token = (await resp.json())["pass"]
    catalogue = await booking.backend.service.catalogue()
    pairs = [pair_slots(CENTRE, i) for i in range(len(CALLERS))]
    await booking.backend.inventory.release_slots(
        catalogue.centres[CENTRE], [(slot, 1) for pair in pairs for slot in pair])
    gate.client.session.cookie_jar.clear()
    gate.client.session.cookie_jar.update_cookies({PASS_COOKIE: token})
    browser = {**AGENT_BROWSER, "Accept": "text/html", "Accept-Language": "de"}
    page = ""

    async def get(path: str) -> int:
        nonlocal page
        async with gate.client.get(path, headers=browser, allow_redirects=False) as resp:
            page = await resp.text()
            return resp.status

    async def post(path: str, **form: str) -> int:
        nonlocal page
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, page[:300]
        async with gate.client.post(path, data={"csrf_token": found.group(1), **form},
                                    headers=browser) as resp:
            page = await resp.text()
            return resp.status

    for (name, phone), (first, second) in zip(CALLERS, pairs, strict=True):
        assert await get("/") == 200
        assert await post("/start", birth_date=OLD, postcode=HOME_POSTCODE) == 200
        assert await post("/hold", first_slot=first.id, second_slot=second.id) == 200
        assert "Ihre Termine sind reserviert" in page
        assert await post("/details", name=name, contact=phone) == 200
        await booking.backend.outbox.run_once()
        code = booking.sender.last_code(contact_address(phone))
        assert await post("/verify", code=code) == 200
        assert "Ihre Termine sind gebucht" in page and name in page
    assert (await booking.backend.counts())["bookings"] == 3
    # Still in: the pass cookie was never cleared.
    assert gate.client.session.cookie_jar.filter_cookies(
        gate.client.make_url("/"))[PASS_COOKIE].value == token
