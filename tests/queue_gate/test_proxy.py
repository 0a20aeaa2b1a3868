"""The proxy: only a valid, live pass reaches the backend, and it reaches it intact."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from queue_gate.tickets import TicketSigner
from tests.queue_gate.conftest import SECRET, FakeClock, Gate, GateFactory
from vaccine_queue.contract import PASS_COOKIE, PASS_HEADER


async def admit(gate: Gate, clock: FakeClock) -> str:
    """Join, wait for the turn, and return the pass (also left in the cookie jar)."""
    await gate.client.get("/queue/wait")
    clock.advance(1)
    await gate.tick()
    response = await gate.client.get("/queue/api/status")
    body = await response.json()
    assert body["state"] == "admitted", body
    token: str = body["pass"]
    return token


async def test_without_a_pass_browsers_go_to_the_queue(gate: Gate) -> None:
    response = await gate.client.get("/book?postcode=30159", allow_redirects=False,
                                     headers={"Accept": "text/html"})
    assert response.status == 303
    assert response.headers["Location"] == "/queue/wait?next=/book%3Fpostcode%3D30159"


async def test_without_a_pass_apps_get_401_json(gate: Gate) -> None:
    response = await gate.client.post("/api/v1/holds", json={"slot": 1},
                                      headers={"Accept": "application/json"})
    assert response.status == 401
    body = await response.json()
    assert body["error"] == "pass_required"
    assert body["join"] == "/queue/api/join"


async def test_a_pass_is_proxied_with_method_body_headers_and_status(
    gate: Gate, clock: FakeClock
) -> None:
    await admit(gate, clock)
    payload = "x" * 200_000
    response = await gate.client.post(
        "/api/v1/bookings?lang=de", data=payload,
        headers={"Content-Type": "text/plain", "X-Custom": "kept", "Accept": "application/json"},
    )
    assert response.status == 201
    assert response.headers["X-Backend"] == "yes"
    assert "backend=1" in response.headers["Set-Cookie"]
    seen = await response.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/api/v1/bookings"
    assert seen["query"] == "lang=de"
    assert seen["body_length"] == len(payload)
    assert seen["headers"]["Content-Length"] == str(len(payload))
    assert seen["headers"]["X-Custom"] == "kept"
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    assert seen["headers"]["X-Forwarded-Host"].startswith("127.0.0.1:")
    # The pass travels on (the backend checks it too); the ticket cookie does not.
    assert PASS_COOKIE in seen["headers"]["Cookie"]
    assert "qg_ticket" not in seen["headers"]["Cookie"]


@pytest.mark.parametrize("status", [204, 302, 404, 409, 500, 503])
async def test_backend_status_is_kept(gate: Gate, clock: FakeClock, status: int) -> None:
    await admit(gate, clock)
    response = await gate.client.get(f"/status/{status}", allow_redirects=False)
    assert response.status == status


async def test_redirects_are_passed_not_followed(gate: Gate, clock: FakeClock) -> None:
    await admit(gate, clock)
    response = await gate.client.get("/redirect", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/elsewhere"


async def test_large_responses_stream_through(gate: Gate, clock: FakeClock) -> None:
    await admit(gate, clock)
    response = await gate.client.get("/stream")
    body = await response.read()
    assert len(body) == 64 * 16384
    assert body[-1] == 63


async def test_pass_in_a_header_for_apps(gate: Gate, clock: FakeClock) -> None:
    token = await admit(gate, clock)
    gate.client.session.cookie_jar.clear()
    response = await gate.client.get("/api/v1/centres", headers={PASS_HEADER: token})
    assert response.status == 200


async def test_forged_and_foreign_passes_are_refused(gate: Gate, clock: FakeClock) -> None:
    signer = TicketSigner(("attacker",), "default", ticket_max_age_s=60, clock=clock)
    ticket, _ = signer.issue_ticket("x", 1, 0)
    forged = signer.issue_pass(ticket, int(clock.now) + 600)
    other_room = TicketSigner((SECRET,), "other", ticket_max_age_s=60, clock=clock)
    ticket, _ = other_room.issue_ticket("x", 1, 0)
    foreign = other_room.issue_pass(ticket, int(clock.now) + 600)
    for token in (forged, foreign, "nonsense"):
        response = await gate.client.get("/book", headers={PASS_HEADER: token,
                                                           "Accept": "application/json"})
        assert response.status == 401
        assert (await response.json())["error"] in ("pass_invalid", "pass_foreign")


async def test_a_correctly_signed_pass_never_issued_by_redis_is_refused(
    gate: Gate, clock: FakeClock
) -> None:
    """A leaked secret alone is not enough: the pass must also be on record."""
    await gate.tick()
    signer = TicketSigner((SECRET,), "default", ticket_max_age_s=60, clock=clock)
    ticket, _ = signer.issue_ticket("x", 1, 0)
    token = signer.issue_pass(ticket, int(clock.now) + 600)
    response = await gate.client.get("/book", headers={PASS_HEADER: token,
                                                       "Accept": "application/json"})
    assert response.status == 401
    assert (await response.json())["error"] == "session_ended"


async def test_copying_a_pass_into_another_room_cookie_skips_nothing(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    a = await make_gate(room="north")
    b = await make_gate(room="south")
    token = await admit(a, clock)
    response = await b.client.get("/book", headers={PASS_HEADER: token,
                                                    "Accept": "application/json"})
    assert response.status == 401


async def test_pass_expires_with_the_session(gate: Gate, clock: FakeClock) -> None:
    await admit(gate, clock)
    assert (await gate.client.get("/book")).status == 200
    clock.advance(15 * 60 + 1)
    response = await gate.client.get("/book", allow_redirects=False,
                                     headers={"Accept": "text/html"})
    assert response.status == 303
    assert response.headers["Location"].startswith("/queue/wait")


async def test_backend_can_end_the_session(gate: Gate, clock: FakeClock,
                                           redis_client: Redis) -> None:
    token = await admit(gate, clock)
    done = await gate.client.get("/done")
    assert done.status == 200
    assert "X-Queue-End-Session" not in done.headers
    assert await done.text() == "booked"
    gate.client.session.cookie_jar.clear()
    response = await gate.client.get("/book", headers={PASS_HEADER: token,
                                                       "Accept": "application/json"})
    assert response.status == 401
    state = await redis_client.hget("qg:{default}:state", "passes_ended")
    assert state == "1"
    sample = gate.registry.get_sample_value
    assert sample("queuegate_session_duration_seconds_count", {"room": "default"}) == 1
    await gate.tick()
    assert sample("queuegate_room_passes_ended", {"room": "default"}) == 1
    assert sample("queuegate_room_passes_issued", {"room": "default"}) == 1


async def test_backend_down_is_a_friendly_502(make_gate: GateFactory, clock: FakeClock,
                                              backend: TestServer) -> None:
    from devtools.processes import free_port

    gate = await make_gate(backend_url=f"http://127.0.0.1:{free_port()}")
    await admit(gate, clock)
    page = await gate.client.get("/book", headers={"Accept": "text/html"})
    assert page.status == 502
    assert "<html" in await page.text()
    api = await gate.client.get("/api/v1/x", headers={"Accept": "application/json"})
    assert api.status == 502
    assert json.loads(await api.text())["error"] == "backend_unavailable"


async def test_chunked_uploads_stream_through(gate: Gate, clock: FakeClock) -> None:
    await admit(gate, clock)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(10):
            yield bytes([65 + i]) * 10_000

    response = await gate.client.post("/upload", data=chunks(),
                                      headers={"Accept": "application/json"})
    assert response.status == 201
    seen = await response.json()
    assert seen["body_length"] == 100_000
    assert seen["body"].startswith("A" * 10_000)
