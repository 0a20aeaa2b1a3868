"""The gate's Lua scripts against the store: the keys each header names are the keys the
store sends, all in the room's slot, and every outcome of every script is read by name.

tests/test_lua_scripts.py checks the scripts' text; this module runs them. The store reads
each reply with `vaccine_queue.lua.Reply`, which refuses a reply that is not name/value
pairs or lacks a field, so each call here also checks the reply's shape.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from queue_gate.settings import Settings
from queue_gate.store import (
    RESEED_MARGIN,
    ROOMS_KEY,
    RoomKeys,
    RoomMissing,
    RoomStore,
    ScheduleConflict,
    ScheduledChange,
)
from tests.queue_gate.conftest import FakeClock
from vaccine_queue.lua import Reply, register, script_source

ROOM = "scripts"
KEYS = RoomKeys(ROOM)
# Every gate script and the keys the store sends it (the join window and ticket id are
# placeholders in the headers: <window number>, <ticket id>).
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {
    "tick-11.lua": KEYS.room_script_keys,
    "join-14.lua": KEYS.join_script_keys(2_999_999),
    "issue_pass-11.lua": KEYS.room_script_keys,
    "draw_place-11.lua": KEYS.room_script_keys,
    "check_pass-3.lua": KEYS.check_pass_script_keys("t-1"),
    "end_pass-2.lua": KEYS.end_pass_script_keys,
    "configure-2.lua": KEYS.configure_script_keys,
    "_config_change.lua": KEYS.configure_script_keys,
    "set_schedule-3.lua": KEYS.schedule_script_keys,
    "apply_schedule-3.lua": KEYS.schedule_script_keys,
    "_schedule.lua": KEYS.schedule_script_keys,
    "health-3.lua": KEYS.health_script_keys,
    "presence-4.lua": KEYS.presence_script_keys,
    "issue_agent_pass-4.lua": KEYS.issue_agent_pass_script_keys("agent.a-1"),
    "check_agent_pass-3.lua": KEYS.check_agent_pass_script_keys("agent.a-1"),
    "revoke_agent_pass-4.lua": KEYS.revoke_agent_pass_script_keys("agent.a-1"),
    "_room.lua": KEYS.room_script_keys,
    # Turn messages (issue 16; run in tests/queue_gate/test_notify.py).
    "notify_optin-6.lua": KEYS.notify_script_keys,
    "notify_claim-6.lua": KEYS.notify_script_keys,
    "notify_done-6.lua": KEYS.notify_script_keys,
    "notify_forget-6.lua": KEYS.notify_script_keys,
    "_notify.lua": KEYS.notify_script_keys,
}
TICK_FIELDS = {
    "mode", "rate_per_minute", "message", "session_minutes", "epoch", "max_active",
    "opens_at", "seq", "frontier", "admitted", "skipped", "prequeue_size", "passes_active",
    "passes_issued", "passes_ended", "draw_opens_at", "draw_base", "draw_count", "now",
    "reseeded_at",
    "challenge_bits", "challenge_bits_max", "challenge_join_rate",  # proof of work ...
    "challenge_bits_now", "join_rate",  # ... and how it rises with the join rate
    "rate_mode", "rate_min", "rate_max", "effective_rate", "backend",  # adaptive admission
    "routes",  # the requests the room covers (queue_gate/rooms.py)
    "schedule_next", "schedule_version",  # the schedule (apply_schedule-3.lua)
}
_HEADER_KEY = re.compile(r"^--\s+KEYS\[(\d+)\]\s+((?:<[^>]*>|\S)+)")


def header_keys(name: str) -> list[str]:
    """The key names a script's header gives for KEYS[1], KEYS[2], ... in order."""
    text = importlib.resources.files("queue_gate").joinpath("lua", name).read_text("utf-8")
    found = [match.groups() for line in text.splitlines()
             if (match := _HEADER_KEY.match(line))]
    assert [int(index) for index, _ in found] == list(range(1, len(found) + 1))
    return [template for _, template in found]


def named_like(template: str, key: str) -> bool:
    """Whether `key` is the header's `template` (`qg:{room}:pfp:<ticket id>`) filled in."""
    parts = re.split(r"(\{room\}|<[^>]*>)", template)
    pattern = "".join(re.escape(f"{{{ROOM}}}") if part == "{room}" else
                      "[^:]+" if part.startswith("<") else re.escape(part) for part in parts)
    return re.fullmatch(pattern, key) is not None


def test_every_gate_script_is_covered_here() -> None:
    folder = importlib.resources.files("queue_gate").joinpath("lua")
    scripts = {entry.name for entry in folder.iterdir() if entry.name.endswith(".lua")}
    assert scripts - {"_clock.lua"} == set(SCRIPT_KEYS)


@pytest.mark.parametrize("name", sorted(SCRIPT_KEYS))
def test_the_store_sends_the_keys_each_header_names(name: str) -> None:
    keys = SCRIPT_KEYS[name]
    templates = header_keys(name)
    assert len(templates) == len(keys)
    for template, key in zip(templates, keys, strict=True):
        assert named_like(template, key), (template, key)


@pytest.mark.parametrize("name", sorted(SCRIPT_KEYS))
def test_a_script_stays_in_its_rooms_slot(name: str) -> None:
    keys = SCRIPT_KEYS[name]
    assert {key_slot(key.encode()) for key in keys} == {key_slot(f"{{{ROOM}}}".encode())}
    assert ROOMS_KEY not in keys
    assert ROOMS_KEY not in script_source("queue_gate", name)


def test_each_script_includes_what_it_uses_once() -> None:
    room_scripts = {"tick-11.lua", "join-14.lua", "issue_pass-11.lua", "draw_place-11.lua"}
    # Shared helpers are pasted into scripts; notify_forget-6.lua needs no clock.
    for name in set(SCRIPT_KEYS) - {"_room.lua", "_config_change.lua", "_schedule.lua",
                                    "_notify.lua", "notify_forget-6.lua"}:
        source = script_source("queue_gate", name)
        # presence-4.lua only counts bits: it reads no time.
        assert source.count("local function room_now(") == (name != "presence-4.lua"), name
        assert source.count("local function freeze_draw_if_due(") == (name in room_scripts)


# --- every outcome, read by name ------------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def make_store(client: aioredis.Redis, clock: FakeClock) -> Callable[..., RoomStore]:
    def factory(**overrides: object) -> RoomStore:
        values: dict[str, object] = {"secrets": ("s",), "admin_token": "t", "room": ROOM,
                                     "join_limit": 0, **overrides}
        return RoomStore(client, Settings(**values), clock=clock)  # type: ignore[arg-type]

    return factory


async def test_tick_answers_every_field_it_promises(client: aioredis.Redis,
                                                    clock: FakeClock) -> None:
    tick = register(client, "queue_gate", "tick-11.lua")
    # now, most credited, spent passes kept, grace, draw grace, walk limit, a new room's
    # rate, mode, message, session minutes and epoch, no snapshot (seq, frontier, max
    # active, opening, margin), no more settings, then two numbers seen
    args: list[str | int] = [repr(clock.now), 5, 3600, 300, 30, 2000,
                             60, "queue", "Hello", 15, "e1", 0, 0, 0, "", 0, 0, 3, 4]
    reply = Reply(await tick(keys=KEYS.room_script_keys, args=args), "tick-11.lua")
    assert set(reply) == TICK_FIELDS
    assert (reply.text("mode"), reply.integer("rate_per_minute"), reply.text("message"),
            reply.text("epoch"), reply.text("opens_at"), reply.text("draw_opens_at")) == (
        "queue", 60, "Hello", "e1", "", "")
    assert reply.number("now") == clock.now


async def test_join_outcomes(make_store: Callable[..., RoomStore], clock: FakeClock) -> None:
    store = make_store(join_limit=2)
    first = await store.join("t-1", address="10.0.0.1")  # "missing": the store ticks, retries
    snapshot = await store.tick()
    assert (first.mode, first.number, first.frontier, first.epoch) == (
        "queue", 1, 0, snapshot.epoch)
    together = await asyncio.gather(*(store.join(f"t-{i}", address="10.0.0.2")
                                      for i in range(2, 6)))
    assert [(r.mode, r.number) for r in together] == [
        ("queue", 2), ("queue", 3), ("limited", 0), ("limited", 0)]
    assert together[2].retry_after_s > 0
    await store.update_config({"mode": "passthrough"})
    passed = await store.join("t-6")
    assert (passed.mode, passed.number, passed.frontier) == ("passthrough", 4, 4)
    await store.update_config({"mode": "queue", "opens_at": clock.now + 60})
    early = await store.join("t-7")
    assert (early.mode, early.opens_at, early.epoch) == ("prequeue", clock.now + 60,
                                                         snapshot.epoch)
    await store.update_config({"mode": "closed"})
    closed = await store.join("t-8")
    assert (closed.mode, closed.number, closed.frontier) == ("closed", 0, 4)


async def test_issue_pass_outcomes(make_store: Callable[..., RoomStore],
                                   clock: FakeClock) -> None:
    store = make_store(initial_rate_per_minute=60)
    snapshot = await store.tick()
    one, two = (await store.join("t-1")), (await store.join("t-2"))
    assert (await store.issue_pass("t-1", one.number, "other-epoch")).outcome == "stale"
    waiting = await store.issue_pass("t-1", one.number, snapshot.epoch)
    assert (waiting.outcome, waiting.value) == ("waiting", 0)
    clock.advance(2)
    assert (await store.tick()).frontier == 2
    await store.update_config({"max_active": 1})
    issued = await store.issue_pass("t-1", one.number, snapshot.epoch)
    assert (issued.outcome, issued.value) == ("issued", int(clock.now) + 15 * 60)
    again = await store.issue_pass("t-1", one.number, snapshot.epoch)
    assert (again.outcome, again.value) == ("again", issued.value)
    full = await store.issue_pass("t-2", two.number, snapshot.epoch)
    assert (full.outcome, full.value) == ("full", 0)
    assert await store.end_pass("t-1") is True
    assert await store.end_pass("t-1") is False
    spent = await store.issue_pass("t-1", one.number, snapshot.epoch)
    assert (spent.outcome, spent.value) == ("spent", int(clock.now))


async def test_configure_changes_every_field_at_once_or_finds_no_room(
    make_store: Callable[..., RoomStore], client: aioredis.Redis
) -> None:
    store = make_store()
    with pytest.raises(RoomMissing):
        await store.update_config({"rate_per_minute": 5})
    assert not await client.exists(KEYS.config)  # a missing room is not created half
    await store.tick()
    await store.update_config({"opens_at": 1_900_000_000.5, "message": "soon"})
    changed = await store.update_config({"rate_per_minute": 7, "mode": "paused",
                                         "opens_at": None})
    assert (changed.rate_per_minute, changed.mode, changed.message, changed.opens_at) == (
        7, "paused", "soon", None)
    assert await store.update_config({"opens_at": None}) == changed  # clearing alone


async def test_schedule_outcomes(make_store: Callable[..., RoomStore],
                                 client: aioredis.Redis, clock: FakeClock) -> None:
    store = make_store()
    entry = ScheduledChange(clock.now + 60, {"mode": "paused", "message": "Pause"})
    with pytest.raises(RoomMissing):
        await store.set_schedule([entry], operator="alice")
    with pytest.raises(RoomMissing):
        await store.apply_schedule()
    assert not await client.exists(KEYS.config)
    await store.tick()
    later = ScheduledChange(clock.now + 120, {"message": None, "max_active": 5})
    stored, changed = await store.set_schedule([later, entry], operator="alice")
    assert changed
    assert [e.at for e in stored] == [entry.at, later.at]
    assert await store.read_schedule() == stored
    assert (await store.tick()).schedule_next == entry.at
    nothing = await store.apply_schedule()
    assert (nothing.applied, nothing.schedule_next) == ((), entry.at)
    clock.advance(130)
    both = await store.apply_schedule()
    assert both.applied == ((stored[0].id, ("message", "mode")),
                            (stored[1].id, ("max_active", "message")))
    assert both.schedule_next is None
    config = await store.read_config()
    assert (config.mode, config.message, config.max_active_sessions) == ("paused", "", 5)
    assert (await store.apply_schedule()).applied == ()
    assert await store.read_schedule() == ()
    # A next time left behind by a list removed by hand is set right by the next call.
    await client.hset(KEYS.config, "schedule_next", str(clock.now - 5))
    assert (await store.tick()).schedule_next == clock.now - 5
    assert (await store.apply_schedule()).schedule_next is None
    assert (await store.tick()).schedule_next is None
    assert await store.set_schedule([], operator="alice") == ((), False)
    # A list read at one version is not written over a newer one.
    read, version = await store.read_schedule_at()
    await store.set_schedule([entry], operator="bob", read_at=version)
    with pytest.raises(ScheduleConflict):
        await store.set_schedule([*read, later], operator="alice", read_at=version)
    assert [e.by for e in await store.read_schedule()] == ["bob"]


async def test_requeued_outcome(make_store: Callable[..., RoomStore], clock: FakeClock) -> None:
    store = make_store(initial_rate_per_minute=60, abandon_grace_s=300)
    snapshot = await store.tick()
    away = await store.join("t-1")
    clock.advance(600)  # not seen for longer than the grace period
    await store.join("t-2")
    await store.tick()
    requeued = await store.issue_pass("t-1", away.number, snapshot.epoch)
    assert (requeued.outcome, requeued.value) == ("requeued", 1)


async def test_draw_place_outcomes(make_store: Callable[..., RoomStore],
                                   clock: FakeClock) -> None:
    store = make_store()
    await store.tick()
    opening = int(clock.now) + 60
    await store.update_config({"opens_at": opening})
    assert (await store.join("t-1")).mode == "prequeue"
    before = await store.draw_place("t-1", opening)
    assert (before.outcome, before.number, before.base) == ("prequeue", 0, 0)
    assert (await store.draw_place("t-1", opening + 1)).outcome == "stale"
    clock.advance(60)
    drawn = await store.draw_place("t-1", opening)
    assert (drawn.outcome, drawn.number, drawn.base) == ("drawn", 1, 0)
    assert (await store.draw_place("t-unknown", opening)).outcome == "stale"


async def test_check_pass_outcomes(make_store: Callable[..., RoomStore],
                                   clock: FakeClock) -> None:
    store = make_store(pass_max_browsers=1)
    snapshot = await store.tick()
    place = await store.join("t-1")
    later = int(clock.now) + 600
    assert await store.check_pass("t-1", "browser-a", later) == ("ended", 0)
    clock.advance(2)
    await store.tick()
    issued = await store.issue_pass("t-1", place.number, snapshot.epoch)
    assert await store.check_pass("t-1", "browser-a", issued.value) == ("ok", issued.value)
    assert await store.check_pass("t-1", "browser-b", issued.value) == ("shared", 1)


async def test_agent_pass_outcomes(make_store: Callable[..., RoomStore],
                                   clock: FakeClock) -> None:
    store = make_store(agent_pass_max_browsers=1)
    with pytest.raises(RoomMissing):
        await store.issue_agent_pass("agent.a-1", "Anna", operator="ops", seconds=60, limit=1)
    await store.tick()
    issued = await store.issue_agent_pass("agent.a-1", "Anna", operator="ops", seconds=60,
                                          limit=1)
    assert (issued.outcome, issued.expires_at, issued.active) == ("issued", clock() + 60, 1)
    full = await store.issue_agent_pass("agent.a-2", "Ben", operator="ops", seconds=60,
                                        limit=1)
    assert (full.outcome, full.active) == ("full", 1)
    assert await store.check_agent_pass("agent.a-1", "fp-1") == ("ok", clock() + 60)
    assert await store.check_agent_pass("agent.a-1", "fp-2") == ("shared", 1)
    assert await store.check_agent_pass("agent.a-2", "fp-1") == ("ended", 0)
    [record] = await store.agent_passes()
    assert (record.pass_id, record.agent, record.issued_by, record.last_used) == (
        "agent.a-1", "Anna", "ops", clock())
    assert await store.revoke_agent_pass("agent.a-1", operator="ops") == "Anna"
    assert await store.revoke_agent_pass("agent.a-1", operator="ops") is None
    assert await store.check_agent_pass("agent.a-1", "fp-1") == ("ended", 0)
    assert await store.agent_passes() == []


async def test_a_room_redis_lost_comes_back_from_the_last_snapshot(
    make_store: Callable[..., RoomStore], client: aioredis.Redis, clock: FakeClock
) -> None:
    """tick-11.lua re-creates a lost room from the caller's snapshot (same epoch and
    configuration, seq with a margin), and check_pass-3.lua honours a pass issued before."""
    store = make_store(initial_rate_per_minute=60)
    await store.tick()
    await store.update_config({"rate_per_minute": 120, "mode": "queue", "message": "Hi",
                               "max_active": 50, "challenge_bits": 12,
                               "rate_mode": "adaptive", "rate_min": 10, "rate_max": 200})
    places = [await store.join(f"t-{i}") for i in range(5)]
    clock.advance(2)
    before = await store.tick()
    issued = await store.issue_pass("t-0", places[0].number, before.epoch)
    await client.flushall()  # the test's own private Redis loses everything
    clock.advance(1)
    after = await store.tick()
    assert (after.epoch, after.config) == (before.epoch, before.config)
    assert (after.config.challenge_bits, after.config.rate_mode, after.config.rate_max) == (
        12, "adaptive", 200)  # every operators' setting, not only the first ones
    assert after.seq == before.seq + RESEED_MARGIN and after.frontier >= before.frontier
    assert after.reseeded_at == clock.now
    assert (await store.join("t-new")).number == after.seq + 1  # behind everyone before
    assert await store.check_pass("t-0", "browser-a", issued.value) == ("ok", issued.value)
    # A pass that expires more than a session after the loss was not issued before it.
    late = int(clock.now) + 15 * 60 + 60
    assert await store.check_pass("t-1", "browser-a", late) == ("ended", 0)


async def test_a_room_that_came_back_behind_is_raised_above_what_was_handed_out(
    make_store: Callable[..., RoomStore], client: aioredis.Redis
) -> None:
    """A promoted replica that lacks the last joins: seq comes back below numbers this
    process gave after its last snapshot; the next tick raises it above them."""
    store = make_store()
    await store.tick()
    for i in range(5):
        await store.join(f"t-{i}")
    snapshot = await store.tick()
    later = [await store.join(f"u-{i}") for i in range(3)]  # after the snapshot: 6, 7, 8
    assert [place.number for place in later] == [6, 7, 8]
    await client.hset(KEYS.state, mapping={"seq": 4, "frontier": 0})  # the replica's view
    raised = await store.tick()
    assert (raised.epoch, raised.seq) == (snapshot.epoch, 8 + RESEED_MARGIN)
    assert raised.reseeded_at is not None
    assert (await store.join("v-1")).number == 8 + RESEED_MARGIN + 1
