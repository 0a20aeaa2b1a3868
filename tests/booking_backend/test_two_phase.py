"""Steps whose script needs keys only the data names: read first (or learnt from the
script's first answer), then the script checks that what was seen still holds. Races
between the read and the script never give a unit back twice, never oversell, and serve
each waiting entry once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import pytest

from booking_backend.inventory import Booking
from booking_backend.store import Script, Value
from tests.booking_backend.conftest import (
    CENTRE,
    HOME_POSTCODE,
    OLD,
    Env,
    MakeEnv,
    pair_slots,
)
from vaccine_queue.lua import Reply


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


async def test_two_sweepers_over_the_same_expired_holds_give_each_unit_back_once(
    env: Env,
) -> None:
    await env.add_pairs(3)
    for i in range(3):
        assert (await hold(env, f"v{i}", i))[0] == 201
    env.clock.advance(env.settings.hold_seconds)
    inventory = env.backend.inventory
    now = inventory.now()
    # Both processes read the same three holds before either runs its script.
    first_read = await inventory.expired_holds(now, 500)
    second_read = await inventory.expired_holds(now, 500)
    assert len(first_read) == len(second_read) == 3
    assert await inventory.expire(first_read, now) == 3
    assert await inventory.expire(second_read, now) == 0
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"], counts["capacity"]) == (6, 0, 6)
    assert await expired_count(env) == 3


async def test_a_hold_confirmed_between_the_read_and_the_sweep_is_not_expired(
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
    # A sweeper whose clock runs a little ahead reads the hold as run out ...
    inventory = env.backend.inventory
    later = inventory.now() + env.settings.hold_seconds
    found = await inventory.expired_holds(later, 500)
    assert [h.hid for h in found] == [hid]
    # ... while the person, still in time on this process's clock, confirms.
    status, booking = await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a",
                                    json={"code": env.sender.last_code("+4915100000070")})
    assert status == 201, booking
    assert await inventory.expire(found, later) == 0
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"], counts["booked"]) == (0, 0, 2)
    assert await expired_count(env) == 0
    stored = await inventory.booking(booking["booking_code"])
    assert stored is not None and stored.status == "active"


def after_each_reply(
    env: Env, monkeypatch: pytest.MonkeyPatch, script: str,
    action: Callable[[Reply], Awaitable[None]],
) -> list[str]:
    """Run `action` after every reply of `script` (outside of it: its own calls are not
    watched), as another process would between two calls; returns the outcomes seen."""
    store = env.backend.store
    run = store.run
    outcomes: list[str] = []
    busy = False

    async def watched(called: Script, keys: Sequence[str], args: Iterable[Value]) -> Reply:
        nonlocal busy
        reply = await run(called, keys, args)
        if called.name == script and not busy:
            outcomes.append(reply.text("outcome"))
            busy = True
            try:
                await action(reply)
            finally:
                busy = False
        return reply

    monkeypatch.setattr(store, "run", watched)
    return outcomes


async def test_an_entry_served_between_the_read_and_a_cancellation_is_served_once(
    make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = await make_env(cancel_requires_code=False)
    pairs = await env.add_pairs(2)
    first = await env.book(pairs[0], "b1", contact="+4915100000061")
    second = await env.book(pairs[1], "b2", contact="+4915100000062")
    for i in range(2):
        status, _ = await join(env, f"w{i}", f"+491510000008{i}")
        assert status == 201
    inventory = env.backend.inventory

    async def other_cancellation(reply: Reply) -> None:
        """Once the first cancellation knows the heads (w0, w1), another one serves w0."""
        if reply.text("outcome") == "retry" and reply.text("district_ids").count(" ") == 1:
            other = await inventory.booking(second["booking_code"])
            assert other is not None
            assert len((await inventory.cancel(other)).extra) == 1

    outcomes = after_each_reply(env, monkeypatch, "cancel-n.lua", other_cancellation)
    booking = await inventory.booking(first["booking_code"])
    assert isinstance(booking, Booking)
    outcome = await inventory.cancel(booking)
    # expected nobody, then w0 and w1 (w0 served meanwhile), then w1 alone: served
    assert outcomes == ["retry", "retry", "ok"]
    assert outcome.status == "ok" and len(outcome.extra) == 1
    counts = await env.backend.counts()
    assert (counts["waiting"], counts["bookings"], counts["free"]) == (0, 2, 0)
    await env.deliver()
    assigned = sorted(m.contact.address for m in env.sender.messages if m.kind == "assigned")
    assert assigned == ["+4915100000080", "+4915100000081"]


async def test_a_release_reads_the_lists_again_when_someone_joins_meanwhile(
    env: Env, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (await join(env, "early", "+4915100000087"))[0] == 201

    async def late_join(reply: Reply) -> None:
        """Between the release's first answer and its next call, a second person joins."""
        if reply.text("outcome") == "retry" and reply.text("district_ids").count(" ") == 0:
            assert (await join(env, "late", "+4915100000089"))[0] == 201

    outcomes = after_each_reply(env, monkeypatch, "release_slots-n.lua", late_join)
    await env.add_pairs(2, share=1.0)
    # expected nobody, then the early one (the list grew meanwhile), then both: served
    assert outcomes == ["retry", "retry", "ok"]
    counts = await env.backend.counts()
    assert (counts["waiting"], counts["bookings"], counts["capacity"]) == (0, 2, 4)


async def test_one_visitor_choosing_many_pairs_at_once_keeps_one_hold(env: Env) -> None:
    await env.add_pairs(6)
    results = await asyncio.gather(*(hold(env, "same", i) for i in range(6)))
    # Each request expects the visitor's previous hold and tries again when another of
    # theirs got in first; a request outrun too often is told to try again (503).
    assert {status for status, _ in results} <= {201, 503}
    held = [body["hold_id"] for status, body in results if status == 201]
    assert held
    statuses = []
    for hid in held:
        _, body = await env.api("GET", f"/api/v1/holds/{hid}", "same")
        statuses.append(body["status"])
    assert statuses.count("held") == 1
    counts = await env.backend.counts()
    assert (counts["held"], counts["free"]) == (2, 10)


async def test_one_person_joining_twice_at_once_waits_once(env: Env) -> None:
    results = await asyncio.gather(*(join(env, "w", "+4915100000088") for _ in range(4)))
    assert sorted(status for status, _ in results) == [200, 200, 200, 201]  # 200: waiting
    assert {body["position"] for _, body in results} == {1}
    assert (await env.backend.counts())["waiting"] == 1


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
    store = env.backend.store
    assert await store.redis.zcard(store.keys.outbox) == 1  # the first code was withdrawn
    assert await env.deliver() == 1
    status, booking = await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a",
                                    json={"code": env.sender.last_code("+4915100000071")})
    assert status == 201, booking
