"""Room schedules (issue 13): timed changes set through the admin API, each applied exactly
once however many gates tick, within one tick of its time, and shown to waiting visitors.

The gates here are separate apps on the same private Redis (each its own store, view and
connections), ticked together with `asyncio.gather`, on an injected clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bench.procs import ADMIN_TOKEN as STACK_ADMIN_TOKEN
from bench.procs import stack
from devtools.servers import private_redis
from queue_gate.admin import create_admin_app
from queue_gate.keys import room_view_key
from queue_gate.schedule import NextChange, next_change
from queue_gate.store import SCHEDULE_MAX, ScheduledChange
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth, join, status
from tests.queue_gate.test_console import CSRF, OPS_TOKEN, sign_in

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
ZONE = zoneinfo.ZoneInfo("Europe/Berlin")


async def admin_of(aiohttp_client: ClientFactory, gate: Gate) -> Client:
    return await aiohttp_client(create_admin_app(gate.app))


async def patch(admin: Client, body: object) -> tuple[int, dict[str, Any]]:
    response = await admin.patch("/admin/rooms/default", headers=auth(), json=body)
    return response.status, await response.json()


async def audit(admin: Client) -> list[dict[str, Any]]:
    response = await admin.get("/admin/audit?room=default&limit=1000", headers=auth())
    assert response.status == 200
    entries: list[dict[str, Any]] = (await response.json())["entries"]
    return entries


def applied_total(gates: list[Gate]) -> float:
    return sum(gate.registry.get_sample_value(
        "queuegate_schedule_changes_applied_total", {"room": "default"}) or 0.0
        for gate in gates)


async def tick_all(gates: list[Gate]) -> None:
    await asyncio.gather(*(gate.tick() for gate in gates))


async def test_each_entry_is_applied_once_with_four_gates_ticking(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock) -> None:
    gates = [await make_gate() for _ in range(4)]
    await tick_all(gates)
    admin = await admin_of(aiohttp_client, gates[0])
    start = int(clock.now)
    code, body = await patch(admin, {"schedule": [
        {"at": start + 30, "set": {"mode": "closed"}},
        {"at": start + 10, "set": {"mode": "paused", "message": "Kein Impfstoff bis 12 Uhr"}},
        {"at": start + 20, "set": {"mode": "queue", "rate_per_minute": 600, "message": None}},
    ]})
    assert code == 200, body
    assert [entry["at"] for entry in body["schedule"]] == [start + 10, start + 20, start + 30]
    before = len(await audit(admin))
    # Nothing is due yet: nothing changes, however often the gates tick.
    for _ in range(3):
        clock.advance(3)
        await tick_all(gates)
    assert applied_total(gates) == 0
    expected = [("paused", 60, "Kein Impfstoff bis 12 Uhr"), ("queue", 600, ""),
                ("closed", 600, "")]
    for applied, (mode, rate, message) in enumerate(expected, start=1):
        clock.now = start + 10 * applied
        for _ in range(3):  # the round at the time applies it; later rounds find none due
            await tick_all(gates)
            # Within one tick of its time every gate shows the room as the entry left it.
            for gate in gates:
                snapshot = gate.app[room_view_key].snapshot
                assert snapshot is not None
                assert (snapshot.config.mode, snapshot.config.rate_per_minute,
                        snapshot.config.message) == (mode, rate, message)
            assert applied_total(gates) == applied
    entries = (await audit(admin))[:-before]
    assert {entry["operator"] for entry in entries} == {"schedule:admin"}
    # Each field of each entry changed once: 2 + 3 + 1 audit records.
    assert sorted((entry["field"], entry["new"]) for entry in entries) == sorted([
        ("mode", "paused"), ("message", "Kein Impfstoff bis 12 Uhr"),
        ("mode", "queue"), ("rate_per_minute", 600), ("message", ""), ("mode", "closed")])
    room = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert (room["mode"], room["schedule"]) == ("closed", [])


async def test_a_tick_with_nothing_due_costs_no_extra_round_trip(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock,
        redis_client: aioredis.Redis) -> None:
    gate = await make_gate()
    await gate.tick()
    admin = await admin_of(aiohttp_client, gate)
    code, _ = await patch(admin, {"schedule": [
        {"at": int(clock.now) + 600, "set": {"mode": "paused"}}]})
    assert code == 200
    await gate.tick()  # reads the new schedule once

    async def calls() -> dict[str, int]:
        stats = await redis_client.info("commandstats")
        return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
                for name in ("evalsha", "zrange")}

    before = await calls()
    for _ in range(20):
        clock.advance(1)
        await gate.tick()
    after = await calls()
    # One script call per tick (the tick itself), no schedule read or apply.
    assert (after["evalsha"] - before["evalsha"], after["zrange"] - before["zrange"]) == (20, 0)


@pytest.mark.parametrize(("schedule", "reason"), [
    ("tomorrow", "must be a list"),
    ([{"at": 1}], 'exactly "at" and "set"'),
    ([{"at": "+60", "set": {"mode": "paused"}}], "unix seconds"),
    ([{"at": True, "set": {"mode": "paused"}}], "unix seconds"),
    ([{"at": -120, "set": {"mode": "paused"}}], "in the past"),
    ([{"at": 10 ** 12, "set": {"mode": "paused"}}], "days ahead"),
    ([{"at": 10 ** 400, "set": {"mode": "paused"}}], "days ahead"),
    ([{"at": float("inf"), "set": {"mode": "paused"}}], "unix seconds"),
    ([{"at": 60, "set": {"mode": "open"}}], "schedule[0].set: mode must be one of"),
    ([{"at": 60, "set": {}}], "schedule[0].set"),
    ([{"at": 60, "set": {"colour": "blue"}}], "Unknown field"),
    ([{"at": 60, "set": {"rate_per_minute": -1}}], "rate_per_minute"),
    ([{"at": 60, "set": {"mode": "paused"}, "by": "me"}], 'exactly "at" and "set"'),
    ([{"at": 60, "set": {"mode": "paused"}}, {"at": 60, "set": {"mode": "closed"}}],
     "same time"),
    ([{"at": 60 + i, "set": {"mode": "paused"}} for i in range(SCHEDULE_MAX + 1)],
     f"at most {SCHEDULE_MAX}"),
    ([{"at": 60, "set": {"rate_mode": "adaptive"}}], "rate_max above 0"),
])
async def test_invalid_schedules_are_refused_with_the_reason(
        gate: Gate, aiohttp_client: ClientFactory, clock: FakeClock, schedule: object,
        reason: str) -> None:
    await gate.tick()
    admin = await admin_of(aiohttp_client, gate)
    if isinstance(schedule, list):  # times relative to now
        schedule = [{**item, "at": clock.now + item["at"]}
                    if isinstance(item.get("at"), int) and not isinstance(item["at"], bool)
                    and abs(item["at"]) < 10 ** 9 else item for item in schedule]
    code, body = await patch(admin, {"schedule": schedule, "message": "not applied"})
    assert code == 422, body
    assert body["error"] == "invalid_change"
    assert reason in body["message"]
    room = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert (room["schedule"], room["message"]) == ([], "")  # nothing of the request applied


async def test_get_shows_the_schedule_and_patch_replaces_or_clears_it(
        gate: Gate, aiohttp_client: ClientFactory, clock: FakeClock) -> None:
    await gate.tick()
    admin = await admin_of(aiohttp_client, gate)
    start = int(clock.now)
    opening = dt.datetime.fromtimestamp(start + 3600, dt.UTC).isoformat()
    code, body = await patch(admin, {"rate_per_minute": 120, "schedule": [
        {"at": start + 7200, "set": {"mode": "closed", "message": "Bis morgen"}},
        {"at": start + 60.5, "set": {"opens_at": opening, "max_active_sessions": 50}},
    ]})
    assert code == 200, body
    assert body["rate_per_minute"] == 120  # fields and the schedule in one request
    got = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert [{k: v for k, v in entry.items() if k != "id"} for entry in got["schedule"]] == [
        {"at": start + 60.5, "set": {"opens_at": opening, "max_active_sessions": 50},
         "by": "admin"},
        {"at": start + 7200, "set": {"mode": "closed", "message": "Bis morgen"}, "by": "admin"},
    ]
    assert len({entry["id"] for entry in got["schedule"]}) == 2
    # What GET shows can be sent back as it is.
    code, body = await patch(admin, {"schedule": [
        {"at": entry["at"], "set": entry["set"]} for entry in got["schedule"][1:]]})
    assert code == 200, body
    assert [entry["set"] for entry in body["schedule"]] == [
        {"mode": "closed", "message": "Bis morgen"}]
    code, body = await patch(admin, {"schedule": []})
    assert (code, body["schedule"]) == (200, [])
    changes = [entry for entry in await audit(admin) if entry["field"] == "schedule"]
    assert [(len(entry["old"]), len(entry["new"])) for entry in changes] == [
        (1, 0), (2, 1), (0, 2)]  # newest first: one audit record per replacement
    assert changes[-1]["new"][0]["set"] == {"opens_at": opening, "max_active_sessions": 50}
    assert (await patch(admin, {"schedule": []}))[0] == 200
    assert len([entry for entry in await audit(admin) if entry["field"] == "schedule"]) == 3
    assert gate.registry.get_sample_value(
        "queuegate_room_changes_total", {"room": "default", "field": "schedule"}) == 3


async def test_a_room_no_gate_created_is_404(gate: Gate, aiohttp_client: ClientFactory,
                                             clock: FakeClock) -> None:
    admin = await admin_of(aiohttp_client, gate)
    response = await admin.patch("/admin/rooms/elsewhere", headers=auth(), json={
        "schedule": [{"at": clock.now + 60, "set": {"mode": "paused"}}]})
    assert response.status == 404


def test_the_next_change_that_concerns_visitors() -> None:
    def entry(at: float, **changes: str) -> ScheduledChange:
        return ScheduledChange(at, dict(changes))

    plan = [entry(10, message="soon"), entry(20, mode="passthrough"), entry(30, mode="paused"),
            entry(40, mode="queue"), entry(50, mode="closed")]
    assert next_change("queue", plan) == NextChange("pauses", 30)
    assert next_change("paused", plan) == NextChange("opens", 20)
    assert next_change("closed", plan[3:]) == NextChange("opens", 40)
    assert next_change("paused", [entry(5, mode="closed")]) == NextChange("closes", 5)
    assert next_change("queue", plan[:2]) is None
    assert next_change("closed", [entry(5, mode="queue", opens_at="900")]) == NextChange(
        "opens", 900)


@pytest.mark.parametrize(("lang", "text"), [
    ("de", "Die Buchung schließt heute um {time} Uhr."),
    ("en", "Booking closes today at {time}."),
])
async def test_waiting_page_and_status_say_when_the_room_closes(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock, lang: str,
        text: str) -> None:
    gate = await make_gate(initial_rate_per_minute=0)
    await gate.tick()
    admin = await admin_of(aiohttp_client, gate)
    closing = int(clock.now) + 3 * 3600
    code, _ = await patch(admin, {"schedule": [
        {"at": closing, "set": {"mode": "closed"}},
        {"at": closing + 86400, "set": {"mode": "queue"}}]})
    assert code == 200
    await gate.tick()
    ticket = (await join(gate))["ticket"]
    _, visitor = await status(gate, ticket)
    iso = dt.datetime.fromtimestamp(closing, dt.UTC).isoformat()
    assert visitor["next_change"] == {"change": "closes", "at": iso}
    room = json.loads(await (await gate.client.get("/queue/api/room")).read())
    assert room["next_change"] == {"change": "closes", "at": iso}
    local = dt.datetime.fromtimestamp(closing, ZONE).strftime("%H:%M")
    page = await gate.client.get(f"/queue/wait?lang={lang}",
                                 headers={"Authorization": f"Bearer {ticket}"})
    html = await page.text()
    assert page.status == 200
    assert text.format(time=local) in html
    # At the closing the next change is the reopening, a day later: with its date.
    clock.now = closing
    await gate.tick()
    _, visitor = await status(gate, ticket)
    assert visitor["state"] == "closed"
    assert visitor["next_change"] == {"change": "opens", "at": dt.datetime.fromtimestamp(
        closing + 86400, dt.UTC).isoformat()}
    page = await gate.client.get(f"/queue/wait?lang={lang}",
                                 headers={"Authorization": f"Bearer {ticket}"})
    day = dt.datetime.fromtimestamp(closing + 86400, ZONE)
    html = await page.text()
    assert (day.strftime("%d.%m.%Y") if lang == "de" else
            f"{day.day} {day.strftime('%B %Y')}") in html


async def test_four_gate_processes_apply_each_entry_once(tmp_path: Path,
                                                          backend: TestServer) -> None:
    """Real processes on Redis TIME, ticking every 50 ms: three entries a second apart."""
    room = "timed"
    with private_redis() as url, stack(tmp_path / "logs", url) as running:
        gates = [running.gate(f"gate-{i}", room, rate_per_minute=60,
                              backend_url=str(backend.make_url("/")),
                              extra_env={"QUEUE_GATE_TICK_INTERVAL_S": "0.05"})
                 for i in range(4)]
        headers = {"Authorization": f"Bearer {STACK_ADMIN_TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def admin(gate: int, path: str) -> Any:
                async with session.get(f"{gates[gate].admin_url}{path}") as response:
                    assert response.status == 200
                    return await response.json()

            start = time.time() + 2
            async with session.patch(f"{gates[0].admin_url}/admin/rooms/{room}", json={
                "schedule": [{"at": start, "set": {"mode": "paused", "message": "Pause"}},
                             {"at": start + 1, "set": {"mode": "queue", "message": None,
                                                       "rate_per_minute": 600}},
                             {"at": start + 2, "set": {"mode": "closed"}}]}) as response:
                assert response.status == 200, await response.text()
            deadline = time.monotonic() + 30
            modes: list[str] = []
            while time.monotonic() < deadline:  # a bound on a hung run, not a timing claim
                modes = [json.loads(await (await session.get(
                    f"{gate.url}/queue/api/room")).read())["mode"] for gate in gates]
                if modes == ["closed"] * 4:
                    break
                await asyncio.sleep(0.2)
            assert modes == ["closed"] * 4
            total = 0.0
            for gate in gates:
                async with session.get(f"{gate.admin_url}/metrics") as response:
                    text = await response.text()
                for family in text_string_to_metric_families(text):
                    if family.name == "queuegate_schedule_changes_applied":
                        total += sum(sample.value for sample in family.samples
                                     if sample.name.endswith("_total"))
            assert total == 3
            entries = (await admin(1, f"/admin/audit?room={room}"))["entries"]
            scheduled = sorted((entry["field"], entry["new"]) for entry in entries
                               if entry["operator"] == "schedule:admin")
            assert scheduled == sorted([("mode", "paused"), ("message", "Pause"),
                                        ("mode", "queue"), ("message", ""),
                                        ("rate_per_minute", 600), ("mode", "closed")])
            document = await admin(2, f"/admin/rooms/{room}")
            assert (document["mode"], document["rate_per_minute"], document["schedule"]) == (
                "closed", 600, [])


# --- the console (issue 14): the schedule shown, an entry added and removed ---------------


async def console_room(console: Client, lang: str = "en") -> tuple[str, str, str]:
    """The room page's text, its CSRF token and the schedule's version in its forms."""
    page = await (await console.get(f"/console/rooms/default?lang={lang}")).text()
    csrf = CSRF.search(page)
    version = re.search(r'name="version" value="(\d+)"', page)
    assert csrf is not None and version is not None
    return page, csrf.group(1), version.group(1)


async def test_console_shows_adds_and_removes_scheduled_changes(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock) -> None:
    gate = await make_gate(admin_tokens=(f"ops:{OPS_TOKEN}",))
    await gate.tick()
    console = await admin_of(aiohttp_client, gate)
    await sign_in(console)
    page, csrf, version = await console_room(console)
    assert "No changes are scheduled" in page
    today = dt.datetime.fromtimestamp(clock.now, ZONE)
    evening = today.replace(hour=18, minute=0, second=0, microsecond=0)
    assert evening.timestamp() > clock.now
    form = {"csrf_token": csrf, "version": version, "date": evening.date().isoformat(),
            "time": "18:00", "mode": "closed", "rate_per_minute": "",
            "message": "Die Buchung ist beendet."}
    added = await console.post("/console/rooms/default/schedule/add?lang=en", data=form,
                               allow_redirects=False)
    assert added.status == 303, await added.text()
    page, csrf, version = await console_room(console)
    assert added.headers["Location"] == "/console/rooms/default?scheduled=1#schedule"
    assert "The schedule is saved" in await (await console.get(
        "/console/rooms/default?scheduled=1&lang=en")).text()
    assert "Closed" in page and "Die Buchung ist beendet." in page
    assert '<td class="operator">ops</td>' in page
    assert "1 planned, the next on" in page
    api = await (await console.get("/admin/rooms/default", headers=auth())).json()
    assert [(e["at"], e["set"], e["by"]) for e in api["schedule"]] == [
        (int(evening.timestamp()), {"mode": "closed", "message": "Die Buchung ist beendet."},
         "ops")]

    # Refused with the reason, in the page's language: the past, the same minute, nothing.
    for changes, code, reason in (
            ({"time": "06:00", "date": (today - dt.timedelta(days=1)).date().isoformat()},
             422, "Diese Zeit ist vorbei"),
            ({"time": "18:00"}, 422, "Für diese Minute ist schon eine Änderung geplant"),
            ({"time": "19:00", "mode": "", "message": ""}, 422,
             "Das Formular enthielt keine Einstellung"),
            ({"time": "25:99"}, 422, "Bitte geben Sie ein Datum und eine Uhrzeit an"),
            ({"time": "19:00", "rate_per_minute": "viele"}, 422, "Die Rate muss"),
            ({"time": "19:00", "version": str(int(version) - 1)}, 409,
             "Der Zeitplan hat sich geändert")):
        response = await console.post("/console/rooms/default/schedule/add?lang=de",
                                       data={**form, "csrf_token": csrf, "version": version,
                                             **changes})
        text = await response.text()
        assert response.status == code, (changes, text[:2000])
        assert reason in text, changes
    assert len((await (await console.get("/admin/rooms/default",
                                         headers=auth())).json())["schedule"]) == 1

    # Another entry; then the first removed, by its id.
    morning = (today + dt.timedelta(days=1)).date().isoformat()
    added = await console.post("/console/rooms/default/schedule/add", allow_redirects=False,
                               data={**form, "version": version, "date": morning,
                                     "time": "08:00", "mode": "queue",
                                     "rate_per_minute": "600", "message": "",
                                     "clear_message": "1"})
    assert added.status == 303
    api = await (await console.get("/admin/rooms/default", headers=auth())).json()
    assert [e["set"] for e in api["schedule"]] == [
        {"mode": "closed", "message": "Die Buchung ist beendet."},
        {"mode": "queue", "rate_per_minute": 600, "message": ""}]
    page, csrf, version = await console_room(console)
    stale = await console.post("/console/rooms/default/schedule/remove?lang=en", data={
        "csrf_token": csrf, "version": version, "id": "no-such-entry"})
    assert stale.status == 409
    removed = await console.post("/console/rooms/default/schedule/remove",
                                 allow_redirects=False, data={
                                     "csrf_token": csrf, "version": version,
                                     "id": api["schedule"][0]["id"]})
    assert removed.status == 303
    api = await (await console.get("/admin/rooms/default", headers=auth())).json()
    assert [e["set"]["mode"] for e in api["schedule"]] == ["queue"]
    # Without a CSRF token nothing changes.
    forged = await console.post("/console/rooms/default/schedule/remove", data={
        "version": version, "id": api["schedule"][0]["id"]})
    assert forged.status == 400
    audit_page = await (await console.get("/console/audit?lang=en")).text()
    assert "2 planned changes" in audit_page and "1 planned changes" in audit_page


async def test_a_closed_room_says_when_it_opens(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock) -> None:
    gate = await make_gate(initial_mode="closed")
    await gate.tick()
    admin = await admin_of(aiohttp_client, gate)
    opening = int(clock.now) + 86400
    code, _ = await patch(admin, {"schedule": [{"at": opening, "set": {"mode": "queue"}}]})
    assert code == 200
    await gate.tick()
    refused = await gate.client.post("/queue/api/join")
    body = await refused.json()
    assert (refused.status, body["error"], body["next_change"]) == (
        409, "room_closed",
        {"change": "opens", "at": dt.datetime.fromtimestamp(opening, dt.UTC).isoformat()})
    page = await gate.client.get("/queue/wait?lang=en")
    day = dt.datetime.fromtimestamp(opening, ZONE)
    assert page.status == 200
    assert (f"Booking opens on {day.day} {day.strftime('%B %Y')} at {day.strftime('%H:%M')}."
            in await page.text())


async def test_a_schedule_survives_a_redis_that_comes_back_empty(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock,
        redis_client: aioredis.Redis) -> None:
    gates = [await make_gate() for _ in range(2)]
    await tick_all(gates)
    admin = await admin_of(aiohttp_client, gates[0])
    closing = int(clock.now) + 600
    code, body = await patch(admin, {"schedule": [
        {"at": closing, "set": {"mode": "closed"}},
        {"at": closing + 600, "set": {"mode": "queue"}}]})
    assert code == 200
    ids = [entry["id"] for entry in body["schedule"]]
    await tick_all(gates)
    await redis_client.flushall()  # our own private Redis comes back empty
    await tick_all(gates)  # both re-create the room; one puts the schedule back
    room = await (await admin.get("/admin/rooms/default", headers=auth())).json()
    assert [(entry["id"], entry["by"]) for entry in room["schedule"]] == [
        (ids[0], "admin"), (ids[1], "admin")]
    restored = [entry for entry in await audit(admin) if entry["field"] == "schedule"]
    assert [entry["operator"] for entry in restored] == ["gate:restored"]
    for gate in gates:
        assert gate.app[room_view_key].next_change == NextChange("closes", closing)
    clock.now = closing
    await tick_all(gates)
    assert applied_total(gates) == 1
    snapshots = [gate.app[room_view_key].snapshot for gate in gates]
    assert {snapshot.config.mode for snapshot in snapshots if snapshot} == {"closed"}
