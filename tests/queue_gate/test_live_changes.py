"""Operators' changes reaching visitors (issue 14): the room-wide state every waiting page
checks, the waiting page's bounds, the audit of changes with named operators, and the
admission metrics split into admitted, passed over and the frontier's speed.

How fast a change shows in a real browser is tests/queue_gate/test_live_browser.py; how
fast for many visitors, and what it costs, is bench/propagation.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from queue_gate.admin import create_admin_app
from queue_gate.admission import ROOM_CHECK_S
from queue_gate.keys import room_view_key
from queue_gate.settings import Settings
from queue_gate.waiting import NOSCRIPT_REFRESH_MAX_S
from tests.queue_gate.conftest import ADMIN_TOKEN, FakeClock, Gate, GateFactory, auth, join, status
from vaccine_queue.config import SettingsError

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
ALICE = "alice-token-0123456789"
BOB = "bob-token-9876543210"


async def admin_of(aiohttp_client: ClientFactory, gate: Gate) -> TestClient[web.Request,
                                                                           web.Application]:
    return await aiohttp_client(create_admin_app(gate.app))


async def room_state(gate: Gate, **headers: str) -> tuple[int, Mapping[str, str], bytes]:
    response = await gate.client.get("/queue/api/room", headers=headers)
    return response.status, response.headers, await response.read()


# --- the room-wide state ----------------------------------------------------------------


async def test_room_state_is_small_cacheable_and_versioned(
        make_gate: GateFactory, aiohttp_client: ClientFactory) -> None:
    gate = await make_gate(initial_message="Willkommen")
    await gate.tick()
    code, headers, body = await room_state(gate)
    assert code == 200
    assert headers["Cache-Control"] == "public, max-age=1"
    assert "Set-Cookie" not in headers
    room = json.loads(body)
    assert room == {"version": room["version"], "mode": "queue", "message": "Willkommen",
                    "rate_per_minute": 60, "opens_at": None, "recovering": False,
                    "next_change": None, "check_after_s": ROOM_CHECK_S}
    assert headers["ETag"] == f'"{room["version"]}"'
    # A cache or page that has this version gets a 304 without a body.
    code, again, body = await room_state(gate, **{"If-None-Match": headers["ETag"]})
    assert (code, body, again["ETag"]) == (304, b"", headers["ETag"])

    admin = await admin_of(aiohttp_client, gate)
    response = await admin.patch("/admin/rooms/default", headers=auth(),
                                 json={"mode": "paused", "message": "Pause bis 8:30"})
    assert response.status == 200
    code, changed, body = await room_state(gate, **{"If-None-Match": headers["ETag"]})
    assert code == 200 and changed["ETag"] != headers["ETag"]
    assert json.loads(body)["mode"] == "paused"
    assert json.loads(body)["message"] == "Pause bis 8:30"


async def test_every_process_serves_the_same_state_after_its_tick(
        make_gate: GateFactory, aiohttp_client: ClientFactory) -> None:
    """The same configuration gives the same bytes and ETag in every gate process, so a
    cache in front of several gates and the pages' versions agree."""
    first, second = await make_gate(), await make_gate()
    await first.tick()
    await second.tick()
    assert (await room_state(first))[2] == (await room_state(second))[2]
    admin = await admin_of(aiohttp_client, first)
    await admin.patch("/admin/rooms/default", headers=auth(), json={"rate_per_minute": 240})
    assert json.loads((await room_state(first))[2])["rate_per_minute"] == 240
    assert json.loads((await room_state(second))[2])["rate_per_minute"] == 60  # until it ticks
    await second.tick()
    assert (await room_state(first))[2] == (await room_state(second))[2]


async def test_the_waiting_page_carries_the_room_version_and_a_bounded_refresh(
        gate: Gate, aiohttp_client: ClientFactory) -> None:
    admin = await admin_of(aiohttp_client, gate)
    for _ in range(300):  # far back: the personal poll interval is the longest
        await join(gate)
    await admin.patch("/admin/rooms/default", headers=auth(),
                      json={"message": "<b>Impfstoff</b> kommt & geht"})
    page = await (await gate.client.get("/queue/wait")).text()
    refresh = re.search(r'http-equiv="refresh" content="(\d+)"', page)
    assert refresh is not None and 1 <= int(refresh.group(1)) <= NOSCRIPT_REFRESH_MAX_S
    version = json.loads((await room_state(gate))[2])["version"]
    assert f'var roomVersion = "{version}";' in page
    # The operator's words as text, never as markup.
    assert "&lt;b&gt;Impfstoff&lt;/b&gt; kommt &amp; geht" in page
    assert "<b>Impfstoff" not in page


async def test_a_closed_or_paused_page_shows_the_message(gate: Gate,
                                                        aiohttp_client: ClientFactory) -> None:
    admin = await admin_of(aiohttp_client, gate)
    ticket = (await join(gate))["ticket"]
    for mode in ("paused", "closed"):
        await admin.patch("/admin/rooms/default", headers=auth(),
                          json={"mode": mode, "message": f"{mode}: bis 9 Uhr"})
        code, body = await status(gate, ticket)
        assert (code, body["state"], body["message"]) == (200, mode, f"{mode}: bis 9 Uhr")
        page = await (await gate.client.get(
            "/queue/wait", headers={"Authorization": f"Bearer {ticket}"})).text()
        assert f"{mode}: bis 9 Uhr</p>" in page


# --- the audit ----------------------------------------------------------------------------


async def test_each_change_is_audited_with_its_operator(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock) -> None:
    gate = await make_gate(admin_tokens=(f"alice:{ALICE}", f"bob:{BOB}"))
    await gate.tick()
    admin = await admin_of(aiohttp_client, gate)
    response = await admin.patch("/admin/rooms/default", headers=auth(ALICE),
                                 json={"mode": "paused", "message": "Pause"})
    assert response.status == 200
    clock.advance(5)
    # The same mode again is no change; the rate is.
    await admin.patch("/admin/rooms/default", headers=auth(BOB),
                      json={"mode": "paused", "rate_per_minute": 120,
                            "max_active_sessions": 50})
    clock.advance(5)
    await admin.patch("/admin/rooms/default", headers=auth(ADMIN_TOKEN),
                      json={"mode": "queue", "message": None})
    response = await admin.get("/admin/audit", headers=auth(BOB))
    assert response.status == 200
    entries = (await response.json())["entries"]
    seen = [(e["operator"], e["field"], e["old"], e["new"]) for e in entries]
    assert sorted(seen[:2]) == [("admin", "message", "Pause", ""),
                                ("admin", "mode", "paused", "queue")]
    assert sorted(seen[2:4]) == [("bob", "max_active_sessions", 0, 50),
                                 ("bob", "rate_per_minute", 60, 120)]
    assert sorted(seen[4:]) == [("alice", "message", "", "Pause"),
                                ("alice", "mode", "queue", "paused")]
    assert {e["room"] for e in entries} == {"default"}
    assert entries[0]["at"] > entries[-1]["at"]
    assert entries[-1]["at"].startswith("2027-01-15T08:00:00")  # the fake clock's time

    limited = await (await admin.get("/admin/audit?room=default&limit=2",
                                     headers=auth(ALICE))).json()
    assert limited["entries"] == entries[:2]
    assert (await (await admin.get("/admin/audit?room=nowhere",
                                   headers=auth())).json()) == {"entries": []}

    sample = gate.registry.get_sample_value
    assert sample("queuegate_room_changes_total", {"room": "default", "field": "mode"}) == 2
    assert sample("queuegate_room_changes_total",
                  {"room": "default", "field": "rate_per_minute"}) == 1


@pytest.mark.parametrize(("query", "code"), [
    ("limit=0", "invalid_limit"), ("limit=1001", "invalid_limit"), ("limit=ten", "invalid_limit"),
    ("limit=%C2%B2", "invalid_limit"), ("limit=-1", "invalid_limit"),
    ("room=Not%20a%20room", "invalid_room"), ("room=", "invalid_room"),
])
async def test_bad_audit_queries_get_a_clear_400(
        gate: Gate, aiohttp_client: ClientFactory, query: str, code: str) -> None:
    admin = await admin_of(aiohttp_client, gate)
    response = await admin.get(f"/admin/audit?{query}", headers=auth())
    assert response.status == 400
    assert (await response.json())["error"] == code


async def test_the_audit_needs_a_token(gate: Gate, aiohttp_client: ClientFactory) -> None:
    admin = await admin_of(aiohttp_client, gate)
    assert (await admin.get("/admin/audit")).status == 401
    assert (await admin.get("/admin/audit", headers=auth("wrong"))).status == 401


def test_named_operators_from_the_environment() -> None:
    settings = Settings.from_env({"QUEUE_GATE_SECRETS": "s",
                                  "QUEUE_GATE_ADMIN_TOKENS": f"alice:{ALICE}, bob:{BOB}:x"})
    assert settings.operators == (("alice", ALICE), ("bob", f"{BOB}:x"))
    assert ALICE not in repr(settings)
    both = Settings.from_env({"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "shared",
                              "QUEUE_GATE_ADMIN_TOKENS": f"alice:{ALICE}"})
    assert both.operators == (("admin", "shared"), ("alice", ALICE))


@pytest.mark.parametrize(("tokens", "words"), [
    ("alice", "name:token"), (":token", "name:token"), ("alice:", "name:token"),
    ("al ice:token", "name:token"), (f"alice:{ALICE},alice:{BOB}", "named twice"),
    (f"alice:{ALICE},bob:{ALICE}", "shares a token"), ("admin:other", "named twice"),
])
def test_bad_operator_tokens_are_refused(tokens: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env({"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "shared",
                           "QUEUE_GATE_ADMIN_TOKENS": tokens})


# --- metrics that mean what they say -------------------------------------------------


async def test_admitted_passed_over_and_frontier_speed_are_separate(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock) -> None:
    """Half the line has left: 60 per minute are admitted, 60 passed over, and the frontier
    moves at 120 (the issue saw the frontier's speed shown as the admission rate)."""
    gate = await make_gate(initial_mode="paused", initial_rate_per_minute=60,
                           abandon_grace_s=240, poll_max_s=120)
    tickets = [(await join(gate))["ticket"] for _ in range(400)]
    for _ in range(4):  # only every other visitor keeps polling through the grace period
        clock.advance(90)
        for ticket in tickets[::2]:
            await status(gate, ticket)
        await gate.tick()
    admin = await admin_of(aiohttp_client, gate)
    await admin.patch("/admin/rooms/default", headers=auth(), json={"mode": "queue"})
    for _ in range(4 * 30):
        clock.advance(0.25)
        await gate.tick()
    view = gate.app[room_view_key]
    admitted, passed, frontier = (view.measured_rate_per_minute(),
                                  view.passed_over_per_minute(), view.frontier_per_minute())
    assert admitted is not None and passed is not None and frontier is not None
    assert 55 <= admitted <= 65
    assert 55 <= passed <= 65
    assert frontier == pytest.approx(admitted + passed)
    sample = gate.registry.get_sample_value
    labels = {"room": "default"}
    assert sample("queuegate_admission_rate_measured_per_minute", labels) == admitted
    assert sample("queuegate_passed_over_per_minute", labels) == passed
    assert sample("queuegate_frontier_speed_per_minute", labels) == frontier
    room = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert room["measured_rate_per_minute"] == round(admitted, 2)
    assert room["passed_over_per_minute"] == round(passed, 2)
    assert room["frontier_per_minute"] == round(frontier, 2)
