"""Never oversold: many people at once against a few pairs, and cancellations under load."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, Env, MakeEnv
from tests.booking_backend.test_paths import audit


async def test_thousand_attempts_at_ten_pairs_book_exactly_ten(env: Env) -> None:
    pairs = await env.add_pairs(10)

    async def attempt(i: int) -> tuple[int, Any]:
        first, second = pairs[i % 10]
        return await env.api("POST", "/api/v1/holds", f"t{i}", json={
            "birth_date": OLD, "postcode": HOME_POSTCODE,
            "first_slot": first.id, "second_slot": second.id})

    results = await asyncio.gather(*(attempt(i) for i in range(1000)))
    won = [(i, body) for i, (status, body) in enumerate(results) if status == 201]
    lost = [body for status, body in results if status != 201]
    assert len(won) == 10
    assert {body["error"] for body in lost} == {"pair_gone"}
    assert len({body["first"]["slot"] for _, body in won}) == 10

    # Every winner asks for a code, then confirms twice at the same moment (double click).
    async def details(i: int, hid: str) -> None:
        status, _ = await env.api("POST", f"/api/v1/holds/{hid}/details", f"t{i}",
                                  json={"name": f"Person {i}", "contact": f"+4915100000{i:03d}"})
        assert status == 202

    await asyncio.gather(*(details(i, body["hold_id"]) for i, body in won))
    assert await env.deliver() == 10

    async def confirm(i: int, hid: str) -> list[tuple[int, Any]]:
        code = env.sender.last_code(f"+4915100000{i:03d}")
        return list(await asyncio.gather(*(
            env.api("POST", f"/api/v1/holds/{hid}/confirm", f"t{i}", json={"code": code})
            for _ in range(2))))

    confirmed = await asyncio.gather(*(confirm(i, body["hold_id"]) for i, body in won))
    codes = set()
    for pair_results in confirmed:
        statuses = sorted(status for status, _ in pair_results)
        assert statuses == [200, 201]
        assert len({body["booking_code"] for _, body in pair_results}) == 1
        codes.add(pair_results[0][1]["booking_code"])
    assert len(codes) == 10
    counts = await env.backend.counts()
    assert counts == {"capacity": 20, "free": 0, "held": 0, "booked": 20, "bookings": 10,
                      "waiting": 0}


async def test_cancellation_under_concurrency_reaches_exactly_one_waiting_entry(
    make_env: MakeEnv,
) -> None:
    env = await make_env(cancel_requires_code=False)
    (pair,) = await env.add_pairs(1)
    booking = await env.book(pair, "booker", contact="+4915111111111")
    for i in range(5):
        status, body = await env.api("POST", "/api/v1/waitlist", f"w{i}", json={
            "birth_date": OLD, "postcode": HOME_POSTCODE, "name": f"Waiting {i}",
            "contact": f"+4915122222{i:03d}"})
        assert status == 201, body
        assert body["position"] == i + 1

    ref = {"booking_code": booking["booking_code"], "birth_date": OLD}
    cancels = [env.api("POST", "/api/v1/bookings/cancel", f"c{i}", json=ref) for i in range(10)]
    holds = [env.api("POST", "/api/v1/holds", f"h{i}", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE,
        "first_slot": pair[0].id, "second_slot": pair[1].id}) for i in range(20)]
    results = await asyncio.gather(*cancels, *holds)
    cancel_results, hold_results = results[:10], results[10:]

    assert sorted(status for status, _ in cancel_results) == [200] + [409] * 9
    # The waiting list comes first: the freed pair never reached a direct booker.
    assert {status for status, _ in hold_results} == {409}
    counts = await env.backend.counts()
    assert counts["bookings"] == 1 and counts["waiting"] == 4 and counts["free"] == 0
    await env.deliver()
    assigned = [m for m in env.sender.messages if m.kind == "assigned"]
    assert len(assigned) == 1
    assert assigned[0].contact.address == "+4915122222000"  # the first to join


async def test_two_backend_processes_racing_for_one_pair_book_it_once(
    make_env: MakeEnv,
) -> None:
    """Two apps with pools of their own on one database, as two backend processes: many
    visitors through each at once for the same last pair; one hold, one booking."""
    one, two = await make_env(), await make_env(catalogue=False)
    (pair,) = await one.add_pairs(1)
    body = {"birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": pair[0].id,
            "second_slot": pair[1].id}
    results = await asyncio.gather(*(
        (one if i % 2 else two).api("POST", "/api/v1/holds", f"p{i}", json=body)
        for i in range(200)))
    won = [(i, answer) for i, (status, answer) in enumerate(results) if status == 201]
    assert len(won) == 1
    assert {answer["error"] for status, answer in results if status != 201} == {"pair_gone"}
    ((i, held),) = won
    env = one if i % 2 else two
    hid = held["hold_id"]
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/details", f"p{i}",
                              json={"name": "Einzige Person", "contact": "+4915100000999"})
    assert status == 202
    await env.deliver()
    code = env.sender.last_code("+4915100000999")
    # The confirmation reaches both processes at once (a retry through another gate).
    confirmed = await asyncio.gather(*(
        other.api("POST", f"/api/v1/holds/{hid}/confirm", f"p{i}", json={"code": code})
        for other in (one, two, one, two)))
    assert sorted(status for status, _ in confirmed) == [200, 200, 200, 201]
    assert len({answer["booking_code"] for _, answer in confirmed}) == 1
    assert await one.backend.counts() == await two.backend.counts() == {
        "capacity": 2, "free": 0, "held": 0, "booked": 2, "bookings": 1, "waiting": 0}


async def test_racing_cancellations_serve_each_waiting_entry_once(make_env: MakeEnv) -> None:
    """Eight bookings cancelled at once through two processes, twelve people waiting: each
    freed pair goes to exactly one entry, each entry is served at most once, in order."""
    one = await make_env(cancel_requires_code=False)
    two = await make_env(catalogue=False, cancel_requires_code=False)
    pairs = await one.add_pairs(8)
    bookings = [await one.book(pair, f"b{i}", name=f"Bucher {i}",
                               contact=f"+49151333330{i:02d}")
                for i, pair in enumerate(pairs)]
    for i in range(12):
        status, body = await one.api("POST", "/api/v1/waitlist", f"w{i}", json={
            "birth_date": OLD, "postcode": HOME_POSTCODE, "name": f"Warte {i}",
            "contact": f"+49151444440{i:02d}"})
        assert (status, body["position"]) == (201, i + 1)
    results = await asyncio.gather(*(
        (one if i % 2 else two).api("POST", "/api/v1/bookings/cancel", f"c{i}", json={
            "booking_code": booking["booking_code"], "birth_date": OLD})
        for i, booking in enumerate(bookings)))
    assert [status for status, _ in results] == [200] * 8
    served = await one.backend.db.fetch(
        "SELECT w.name, b.first_start FROM waitlist w JOIN bookings b ON b.code = w.booking"
        " WHERE w.status = 'assigned' ORDER BY w.seq")
    # Each freed pair to exactly one entry: eight served, eight different pairs.
    assert len(served) == 8 and len({row["first_start"] for row in served}) == 8
    # The first eight to join were served (SKIP LOCKED lets a later one go first only
    # while an earlier one is being served by another transaction, which then serves it).
    assert sorted(row["name"] for row in served) == sorted(f"Warte {i}" for i in range(8))
    counts = await one.backend.counts()
    assert (counts["bookings"], counts["waiting"], counts["free"]) == (8, 4, 0)
    await audit(one.backend.db)
