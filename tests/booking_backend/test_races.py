"""Races between transactions: two sweepers over the same holds, a confirmation against a
sweeper, a visitor choosing many pairs at once, one person joining twice, two resends.
Units come back once, nothing is oversold, every waiting entry is served once."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.booking_backend.conftest import CENTRE, HOME_POSTCODE, OLD, Env, pair_slots
from tests.booking_backend.test_paths import audit


async def hold(env: Env, ticket: str, pair: int) -> tuple[int, Any]:
    first, second = pair_slots(CENTRE, pair)
    return await env.api("POST", "/api/v1/holds", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
        "second_slot": second.id})


async def join(env: Env, ticket: str, contact: str) -> tuple[int, Any]:
    return await env.api("POST", "/api/v1/waitlist", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "name": f"Wartende {ticket}",
        "contact": contact})


async def expired_count(env: Env) -> int:
    return (await env.backend.levels()).counts["holds_expired"]


async def test_sweepers_at_once_give_each_unit_back_once(env: Env) -> None:
    await env.add_pairs(3)
    for i in range(3):
        assert (await hold(env, f"v{i}", i))[0] == 201
    env.clock.advance(env.settings.hold_seconds)
    inventory = env.backend.inventory
    # Four sweepers (four backend processes) at the same moment.
    freed = await asyncio.gather(*(inventory.sweep() for _ in range(4)))
    assert sum(freed) == 3
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"], counts["capacity"]) == (6, 0, 6)
    assert await expired_count(env) == 3
    await audit(env.backend.db)


async def test_a_hold_confirmed_while_a_sweeper_runs_is_booked_or_expired_never_both(
    env: Env,
) -> None:
    await env.add_pairs(1)
    status, held = await hold(env, "a", 0)
    assert status == 201
    hid = held["hold_id"]
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/details", "a",
                              json={"name": "Rita Rasch", "contact": "+4915100000070"})
    assert status == 202
    await env.deliver()
    code = env.sender.last_code("+4915100000070")
    env.clock.advance(env.settings.hold_seconds - 1)
    (status, booking), swept = await asyncio.gather(
        env.api("POST", f"/api/v1/holds/{hid}/confirm", "a", json={"code": code}),
        env.backend.inventory.sweep())
    assert status == 201, booking
    assert swept == 0
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"], counts["booked"]) == (0, 0, 2)
    assert await expired_count(env) == 0
    await audit(env.backend.db)


async def test_one_visitor_choosing_many_pairs_at_once_keeps_one_hold(env: Env) -> None:
    await env.add_pairs(6)
    results = await asyncio.gather(*(hold(env, "same", i) for i in range(6)))
    # The visitor's requests take turns: each gives the previous hold back.
    assert {status for status, _ in results} == {201}
    statuses = []
    for _, body in results:
        _, state = await env.api("GET", f"/api/v1/holds/{body['hold_id']}", "same")
        statuses.append(state["status"])
    assert statuses.count("held") == 1
    counts = await env.backend.counts()
    assert (counts["held"], counts["free"]) == (2, 10)
    await audit(env.backend.db)


async def test_one_person_joining_twice_at_once_waits_once(env: Env) -> None:
    results = await asyncio.gather(*(join(env, "w", "+4915100000088") for _ in range(4)))
    assert sorted(status for status, _ in results) == [200, 200, 200, 201]  # 200: waiting
    assert {body["position"] for _, body in results} == {1}
    assert (await env.backend.counts())["waiting"] == 1


async def test_a_release_while_people_join_serves_each_once(env: Env) -> None:
    assert (await join(env, "early", "+4915100000087"))[0] == 201
    results = await asyncio.gather(env.add_pairs(2, share=1.0),
                                   join(env, "late", "+4915100000089"))
    assert results[1][0] == 201
    counts = await env.backend.counts()
    # The late one was served too if they joined before the release looked, else waits.
    assert counts["waiting"] + counts["bookings"] == 2
    assert counts["bookings"] >= 1
    await audit(env.backend.db)


async def test_two_resends_at_once_leave_one_code_on_its_way(env: Env) -> None:
    await env.add_pairs(1)
    status, held = await hold(env, "a", 0)
    hid = held["hold_id"]
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/details", "a",
                              json={"name": "Doppel Klick", "contact": "+4915100000071"})
    assert status == 202
    env.clock.advance(env.settings.code_resend_seconds)
    results = await asyncio.gather(*(env.api("POST", f"/api/v1/holds/{hid}/code", "a")
                                     for _ in range(2)))
    assert sorted(status for status, _ in results)[1] == 429  # the second waits
    # The first code was withdrawn from the outbox: one message is on its way.
    assert await env.backend.db.fetchval("SELECT count(*) FROM outbox") == 1
    assert await env.deliver() == 1
    status, booking = await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a",
                                    json={"code": env.sender.last_code("+4915100000071")})
    assert status == 201, booking
