"""The operators' API: authenticated, validated, live; metrics and health beside it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from queue_gate.admin import create_admin_app
from queue_gate.keys import room_view_key
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth, join, status

Client = TestClient[web.Request, web.Application]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="},
     {"Authorization": "Bearer "}],
)
async def test_admin_needs_the_token(admin: Client, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/admin/rooms"), ("GET", "/admin/rooms/default"),
                         ("PATCH", "/admin/rooms/default")):
        response = await admin.request(method, path, headers=headers, json={"mode": "paused"})
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"


async def test_admin_is_not_on_the_public_port(gate: Gate) -> None:
    response = await gate.client.get("/admin/rooms/default", headers={**auth(),
                                                                      "Accept": "text/html"},
                                     allow_redirects=False)
    assert response.status == 303  # just another page behind the queue


async def test_read_a_room(admin: Client, gate: Gate, clock: FakeClock) -> None:
    for _ in range(3):
        await join(gate)
    clock.advance(1)
    await gate.tick()
    response = await admin.get("/admin/rooms/default", headers=auth())
    assert response.status == 200
    body = await response.json()
    assert body["room"] == "default"
    assert body["rate_per_minute"] == 60
    assert body["mode"] == "queue"
    assert body["tickets_issued"] == 3
    assert body["admitted"] == 1
    assert body["waiting"] == 2
    listed = await (await admin.get("/admin/rooms", headers=auth())).json()
    assert listed == {"rooms": ["default"], "routes": {"default": []}}


async def test_present_counts_those_in_line_seen_lately(
        make_gate: GateFactory, clock: FakeClock,
        aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    """`present`: the waiting visitors seen polling within the grace period (the others
    will be passed over as gone when their turn comes). Tickets 9 to 20 are in line, so
    the count crosses whole and partial bytes of the presence bitmaps."""
    gate = await make_gate(initial_mode="paused", abandon_grace_s=300)
    admin = await aiohttp_client(create_admin_app(gate.app))
    tickets = [(await join(gate))["ticket"] for _ in range(20)]
    await gate.tick()
    body = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert (body["waiting"], body["present"]) == (20, 20)  # joining is being seen
    clock.advance(451)  # more than one and a half grace periods: nobody seen lately
    await gate.tick()
    body = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert (body["waiting"], body["present"]) == (20, 0)
    polled = [tickets[i] for i in (0, 7, 8, 15, 16, 19)]
    for ticket in polled:
        assert (await status(gate, ticket))[0] == 200
    await gate.tick()
    body = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert (body["waiting"], body["present"]) == (20, len(polled))


async def test_change_a_room(admin: Client, gate: Gate) -> None:
    response = await admin.patch(
        "/admin/rooms/default", headers=auth(),
        json={"rate_per_minute": 300, "mode": "paused", "message": "  No vaccine yet ",
              "session_minutes": 20},
    )
    assert response.status == 200
    body = await response.json()
    assert (body["rate_per_minute"], body["mode"], body["message"], body["session_minutes"]) == (
        300, "paused", "No vaccine yet", 20)
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.config.mode == "paused"
    cleared = await admin.patch("/admin/rooms/default", headers=auth(), json={"message": None})
    assert (await cleared.json())["message"] == ""


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"rate_per_minute": -1}, 422),
        ({"rate_per_minute": "100"}, 422),
        ({"rate_per_minute": True}, 422),
        ({"rate_per_minute": 1.5}, 422),
        ({"mode": "open"}, 422),
        ({"session_minutes": 0}, 422),
        ({"message": "x" * 1001}, 422),
        ({"message": 5}, 422),
        ({"colour": "blue"}, 422),
        ({}, 422),
        ([1, 2], 422),
        ("not an object", 422),
    ],
)
async def test_bad_changes_are_refused_clearly(admin: Client, gate: Gate, body: object,
                                               status: int) -> None:
    await gate.tick()
    response = await admin.patch("/admin/rooms/default", headers=auth(), json=body)
    assert response.status == status
    answer = await response.json()
    assert answer["error"] == "invalid_change"
    assert answer["message"]
    unchanged = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert unchanged["rate_per_minute"] == 60


async def test_broken_json_is_a_400(admin: Client, gate: Gate) -> None:
    response = await admin.patch("/admin/rooms/default", headers=auth(), data=b"{oops")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"


async def test_unknown_rooms_are_404(admin: Client, gate: Gate) -> None:
    for path in ("/admin/rooms/nowhere", "/admin/rooms/BAD%20NAME"):
        response = await admin.patch(path, headers=auth(), json={"mode": "paused"})
        assert response.status == 404
        assert (await admin.get(path, headers=auth())).status == 404


async def test_metrics_and_health(admin: Client, gate: Gate, clock: FakeClock) -> None:
    await join(gate)
    clock.advance(1)
    await gate.tick()
    await gate.client.get("/queue/api/status", headers={"Authorization": "Bearer forged"})
    text = await (await admin.get("/metrics")).text()
    for name in ("queuegate_tickets_issued_total", "queuegate_visitors_waiting",
                 "queuegate_admission_rate_per_minute", "queuegate_room_admitted",
                 'queuegate_tokens_rejected_total{reason="ticket_invalid",room="default"} 1.0',
                 'queuegate_room_mode{mode="queue",room="default"} 1.0'):
        assert name in text
    health = await admin.get("/healthz")
    assert health.status == 200
    assert (await health.json())["ok"] is True
