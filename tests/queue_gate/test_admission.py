"""Admission: strict ticket order, the configured rate across processes, live changes, modes."""

from __future__ import annotations

import json

from pytest_aiohttp import AiohttpClient

from queue_gate.keys import room_view_key, store_key
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth, join, status


async def admitted_numbers(gates: list[Gate], tickets: list[dict[str, object]]) -> list[int]:
    """Ask alternately through each gate which tickets are admitted; return their places."""
    admitted = []
    for i, ticket in enumerate(tickets):
        code, body = await status(gates[i % len(gates)], ticket["ticket"])
        assert code == 200, body
        if body["state"] == "admitted":
            admitted.append(i + 1)
    return admitted


async def test_two_gates_admit_in_strict_ticket_order(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    a, b = await make_gate(initial_rate_per_minute=60), await make_gate(initial_rate_per_minute=60)
    tickets = []
    for i in range(20):
        tickets.append(await join(a if i % 2 == 0 else b))
    # Places are handed out in one sequence across both processes.
    assert [t["position"] for t in tickets] == list(range(1, 21))
    for step in range(1, 8):
        clock.advance(1.0)
        await (a if step % 2 else b).tick()
        await (b if step % 2 else a).tick()
        assert await admitted_numbers([a, b], tickets) == list(range(1, step + 1))


async def test_admitted_per_minute_matches_the_rate_however_many_gates_tick(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gates = [await make_gate(initial_rate_per_minute=120) for _ in range(3)]
    for _ in range(500):
        await join(gates[0])
    for gate in gates:
        await gate.tick()
    start = gates[0].app[room_view_key].snapshot
    assert start is not None
    # One minute in uneven steps; every gate ticks after every step.
    for i in range(240):
        clock.advance(0.25 if i % 3 else 0.2)
        for gate in gates:
            await gate.tick()
    end = gates[0].app[room_view_key].snapshot
    assert end is not None
    elapsed = end.now - start.now
    assert end.frontier - start.frontier == int(elapsed * 120 / 60)
    assert 110 <= end.frontier - start.frontier <= 120


async def test_one_gate_or_several_admit_the_same(make_gate: GateFactory, clock: FakeClock) -> None:
    one = await make_gate(room="one", initial_rate_per_minute=90)
    many = [await make_gate(room="many", initial_rate_per_minute=90) for _ in range(4)]
    for _ in range(200):
        await join(one)
        await join(many[0])
    for gate in [one, *many]:
        await gate.tick()
    for _ in range(120):
        clock.advance(0.5)
        await one.tick()
        for gate in many:
            await gate.tick()
    one_snap = one.app[room_view_key].snapshot
    many_snap = many[0].app[room_view_key].snapshot
    assert one_snap is not None and many_snap is not None
    assert one_snap.frontier == many_snap.frontier == 90


async def test_rate_change_takes_effect_at_the_next_tick(
    make_gate: GateFactory, clock: FakeClock, aiohttp_client: AiohttpClient,
) -> None:
    from queue_gate.admin import create_admin_app

    a, b = await make_gate(initial_rate_per_minute=60), await make_gate()
    admin = await aiohttp_client(create_admin_app(a.app))
    for _ in range(100):
        await join(a)
    await b.tick()
    for _ in range(10):
        clock.advance(1)
        await b.tick()
    snap = b.app[room_view_key].snapshot
    assert snap is not None and snap.frontier == 10
    response = await admin.patch("/admin/rooms/default", json={"rate_per_minute": 600},
                                 headers=auth())
    assert response.status == 200
    assert (await response.json())["rate_per_minute"] == 600
    clock.advance(1)
    await b.tick()  # the other process, never told directly
    snap = b.app[room_view_key].snapshot
    assert snap is not None
    assert snap.config.rate_per_minute == 600
    assert snap.frontier == 20


async def test_paused_room_admits_nobody_and_says_so(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_mode="paused", initial_message="No vaccine yet")
    ticket = await join(gate)
    assert ticket["state"] == "paused"
    clock.advance(600)
    await gate.tick()
    code, body = await status(gate, ticket["ticket"])
    assert code == 200
    assert body["state"] == "paused"
    assert body["position"] == 1
    assert body["estimated_wait_s"] is None
    assert body["message"] == "No vaccine yet"


async def test_resuming_after_a_pause_does_not_release_a_burst(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    # Nobody polls in this test: presence is not what it is about.
    gate = await make_gate(initial_mode="paused", initial_rate_per_minute=60, abandon_grace_s=0)
    for _ in range(50):
        await join(gate)
    for _ in range(10):
        clock.advance(60)
        await gate.tick()
    await gate.app[store_key].update_config({"mode": "queue"})
    await gate.tick()
    clock.advance(2)
    await gate.tick()
    snap = gate.app[room_view_key].snapshot
    assert snap is not None and snap.frontier == 2


async def test_an_empty_room_does_not_bank_admissions(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=60)
    await gate.tick()
    clock.advance(300)
    await gate.tick()
    for _ in range(20):
        await join(gate)
    clock.advance(0.25)
    await gate.tick()
    snap = gate.app[room_view_key].snapshot
    assert snap is not None and snap.frontier == 1


async def test_an_outage_of_every_gate_does_not_release_its_backlog(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=600, abandon_grace_s=0)
    for _ in range(1000):
        await join(gate)
    await gate.tick()
    clock.advance(600)  # nobody ticked for ten minutes
    await gate.tick()
    snap = gate.app[room_view_key].snapshot
    assert snap is not None
    assert snap.frontier == 50  # at most five seconds' worth at once


async def test_passthrough_lets_everyone_in_in_order(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=0)
    waiting = [await join(gate) for _ in range(3)]
    await gate.app[store_key].update_config({"mode": "passthrough"})
    await gate.tick()
    for ticket in waiting:
        assert (await status(gate, ticket["ticket"]))[1]["state"] == "admitted"
    newcomer = await join(gate)
    assert newcomer["state"] == "admitted"
    assert isinstance(newcomer["pass"], str)


async def test_closed_room_takes_no_new_entries_but_keeps_places(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=60)
    first, second = await join(gate), await join(gate)
    await gate.app[store_key].update_config({"mode": "closed", "message": "See you Monday"})
    await gate.tick()
    response = await gate.client.post("/queue/api/join")
    assert response.status == 409
    body = json.loads(await response.text())
    assert body["error"] == "room_closed"
    assert body["message"] == "See you Monday"
    page = await gate.client.get("/queue/wait", headers={"Accept": "text/html"})
    assert page.status == 200
    assert "See you Monday" in await page.text()
    clock.advance(60)
    await gate.tick()
    code, state = await status(gate, second["ticket"])
    assert (code, state["state"], state["position"]) == (200, "closed", 2)
    await gate.app[store_key].update_config({"mode": "queue"})
    await gate.tick()
    clock.advance(1)
    await gate.tick()
    assert (await status(gate, first["ticket"]))[1]["state"] == "admitted"
    assert (await status(gate, second["ticket"]))[1]["position"] == 1


async def test_estimate_uses_the_measured_rate(make_gate: GateFactory, clock: FakeClock) -> None:
    gate = await make_gate(initial_rate_per_minute=60)
    tickets = [await join(gate) for _ in range(200)]
    view = gate.app[room_view_key]
    await gate.tick()
    assert view.measured_rate_per_minute() is None  # not enough history yet
    for _ in range(80):
        clock.advance(0.25)
        await gate.tick()
    measured = view.measured_rate_per_minute()
    assert measured is not None and 55 <= measured <= 65
    code, body = await status(gate, tickets[-1]["ticket"])
    assert code == 200
    position = body["position"]
    assert isinstance(position, int) and position == 200 - 20
    wait = body["estimated_wait_s"]
    assert isinstance(wait, int) and abs(wait - position * 60 / measured) <= 1


async def test_poll_interval_grows_with_distance_from_the_front(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=60, poll_min_s=2, poll_max_s=60)
    tickets = [await join(gate) for _ in range(800)]
    front = (await status(gate, tickets[0]["ticket"]))[1]["poll_after_s"]
    back = (await status(gate, tickets[-1]["ticket"]))[1]["poll_after_s"]
    assert isinstance(front, float) and isinstance(back, float)
    assert 1.6 <= front <= 2.4
    assert 48 <= back <= 72
