"""Personal data kept only as long as needed (issue 17): the purge removes names, birth
dates and contacts and leaves every count; the export of a person returns exactly what is
stored about them."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from typing import Any

import asyncpg

from booking_backend.settings import Settings
from tests.booking_backend.conftest import (
    ADMIN_TOKEN,
    CENTRE,
    FIRST_DAY,
    HOME_POSTCODE,
    OLD,
    Env,
    MakeEnv,
    local,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = 86400
LEVELS = ("booking_slot_units", "booking_centre_slot_units", "booking_waitlist_entries",
          "booking_active_bookings", "booking_outbox_pending", "booking_holds_expired_total",
          "booking_codes_expired_total")


async def admin(env: Env, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    async with env.admin.request(method, path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


async def level_metrics(env: Env) -> list[str]:
    async with env.admin.get("/metrics") as resp:
        text = await resp.text()
    return sorted(line for line in text.splitlines()
                  if line.startswith(LEVELS) and not line.startswith("#"))


async def deliver_all(env: Env) -> None:
    while await env.deliver():
        pass


async def join(env: Env, ticket: str, name: str, contact: str) -> None:
    status, body = await env.api("POST", "/api/v1/waitlist", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "name": name, "contact": contact})
    assert status == 201, body


async def test_purge_removes_personal_fields_and_keeps_every_count(make_env: MakeEnv) -> None:
    env = await make_env(cancel_requires_code=False)
    pairs = await env.add_pairs(3)
    kept = await env.book(pairs[0], "a", name="Anna Alt", contact="+4915100000001")
    gone = await env.book(pairs[1], "b", name="Bernd Weg", contact="+4915100000002")
    await join(env, "x", "Xaver Warte", "+4915100000003")
    status, _ = await env.api("POST", "/api/v1/bookings/cancel", "b", json={
        "booking_code": gone["booking_code"], "birth_date": OLD})
    assert status == 200  # Xaver's entry is served with Bernd's pair
    status, hold = await env.api("POST", "/api/v1/holds", "h", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": pairs[2][0].id,
        "second_slot": pairs[2][1].id})
    assert status == 201
    status, _ = await env.api("POST", f"/api/v1/holds/{hold['hold_id']}/details", "h",
                              json={"name": "Hanna Halter", "contact": "+4915100000004"})
    assert status == 202
    await join(env, "w", "Wilma Wartend", "+4915100000005")
    await deliver_all(env)
    env.clock.advance(pairs[2][1].start - env.clock() + 31 * DAY)
    await env.backend.inventory.sweep()  # Hanna's hold runs out (counted), as any day
    env.clock.advance(2 * DAY)  # ended holds are kept a day

    stats, metrics = await admin(env, "GET", "/admin/stats"), await level_metrics(env)
    assert stats[1]["counts"]["bookings"] == 2 and stats[1]["counts"]["waiting"] == 1
    assert 'booking_active_bookings 2.0' in metrics
    assert 'booking_holds_expired_total 1.0' in metrics
    status, preview = await admin(env, "POST", "/admin/purge", json={"dry_run": True})
    assert status == 200
    assert preview == {"dry_run": True, "retention_days": 30, "bookings": 3, "holds": 3,
                       "waitlist": 1}
    status, done = await admin(env, "POST", "/admin/purge")
    assert status == 200
    assert done == {"dry_run": False, "retention_days": 30, "bookings": 3, "holds": 3,
                    "waitlist": 1, "outbox": 0}
    assert await admin(env, "GET", "/admin/stats") == stats
    assert await level_metrics(env) == metrics

    db = env.backend.db
    for row in await db.fetch("SELECT * FROM bookings"):
        assert row["purged_at"] == int(env.clock())
        assert (row["name"], row["birth"], row["channel"], row["address"]) == (None,) * 4
        assert row["identity"] == f"purged:{row['code']}"
    for row in await db.fetch("SELECT * FROM holds"):
        assert row["purged_at"] is not None and row["owner"].startswith("purged:")
        assert (row["birth"], row["identity"], row["name"], row["address"]) == (None,) * 4
    entries = {r["status"]: r for r in await db.fetch("SELECT * FROM waitlist")}
    assert entries["assigned"]["name"] is None and entries["assigned"]["purged_at"]
    assert entries["waiting"]["name"] == "Wilma Wartend"  # still waiting: still needed
    assert not await db.fetch("SELECT 1 FROM verifications")
    # A purged booking is found no more; a purged person may book again.
    status, body = await env.api("POST", "/api/v1/bookings/lookup", "a", json={
        "booking_code": kept["booking_code"], "birth_date": OLD})
    assert status == 404, body
    await join(env, "a2", "Anna Alt", "+4915100000001")
    status, again = await admin(env, "POST", "/admin/purge", json={})
    assert (again["bookings"], again["holds"], again["waitlist"]) == (0, 0, 0)


async def test_a_booking_within_its_time_is_kept(env: Env) -> None:
    (pair,) = await env.add_pairs(1)
    await env.book(pair, "a")
    env.clock.advance(pair[1].start - env.clock() + 29 * DAY)
    status, done = await admin(env, "POST", "/admin/purge")
    assert status == 200 and done["bookings"] == 0
    assert await env.backend.db.fetchval("SELECT count(*) FROM bookings WHERE name IS NOT NULL")


async def test_the_purge_command(env: Env) -> None:
    """`booking-backend purge` runs on the wall clock: the test's 2021 bookings are long
    past their time."""
    (pair,) = await env.add_pairs(1)
    await env.book(pair, "a")
    environ = {**os.environ, "BOOKING_DATABASE_URL": env.settings.database_url,
               "BOOKING_RETENTION_DAYS": "30"}
    for flag, purged in (("--dry-run", 0), ("", 1)):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "booking_backend.main", "purge", *([flag] if flag else []),
            env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
        assert process.returncode == 0, err
        assert b"bookings 1" in err
        assert await env.backend.db.fetchval(
            "SELECT count(*) FROM bookings WHERE purged_at IS NOT NULL") == purged


def test_the_retention_setting() -> None:
    assert Settings.from_env({"BOOKING_RETENTION_DAYS": "90"}).retention_days == 90
    assert Settings.from_env({}).retention_days == 30


def as_json(row: asyncpg.Record, withheld: str = "") -> dict[str, Any]:
    return {k: ("(withheld)" if k == withheld and v is not None
                else v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}


async def test_the_export_returns_exactly_what_is_stored(env: Env) -> None:
    pairs = await env.add_pairs(3)
    # A hold given up for another (both with details), then the booking, which a closure
    # cancels: bookings, holds, a waiting entry, a pending notice, verifications.
    status, first = await env.api("POST", "/api/v1/holds", "p", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": pairs[1][0].id,
        "second_slot": pairs[1][1].id})
    assert status == 201
    status, _ = await env.api("POST", f"/api/v1/holds/{first['hold_id']}/details", "p",
                              json={"name": "Paula Privat", "contact": "+4915100000007"})
    assert status == 202
    booking = await env.book(pairs[0], "p", name="Paula Privat", contact="+4915100000007")
    await env.book(pairs[2], "q", name="Quentin Anders", contact="+4915100000008")
    status, _ = await admin(env, "POST", f"/admin/centres/{CENTRE}/closures", json={
        "from": local(FIRST_DAY, 0), "until": local(FIRST_DAY, 9), "reason": "Kein Impfstoff"})
    assert status == 201

    status, found = await admin(env, "POST", "/admin/persons/export", json={
        "booking_code": booking["booking_code"].lower().replace("-", ""), "birth_date": OLD})
    assert status == 200, found
    db = env.backend.db
    identity = found["identity"]
    bookings = await db.fetch("SELECT * FROM bookings WHERE identity = $1", identity)
    assert sorted(found["bookings"], key=str) == sorted(map(as_json, bookings), key=str)
    assert len(bookings) == 1 and bookings[0]["name"] == "Paula Privat"
    holds = await db.fetch("SELECT * FROM holds WHERE identity = $1", identity)
    assert len(holds) == 2
    assert sorted(found["holds"], key=str) == sorted(map(as_json, holds), key=str)
    entries = await db.fetch("SELECT * FROM waitlist WHERE identity = $1", identity)
    assert len(entries) == 1 and entries[0]["priority"] == 1
    assert found["waitlist"] == [as_json(e) for e in entries]
    outbox = await db.fetch("SELECT * FROM outbox WHERE booking = $1", booking["booking_code"])
    assert [m["kind"] for m in outbox] == ["centre_cancelled"]
    assert found["outbox"] == [as_json(m, "code") for m in outbox]
    vids = sorted(f"hold:{h['id']}" for h in holds)
    verifications = await db.fetch(
        "SELECT * FROM verifications WHERE id = ANY($1::text[]) ORDER BY id", vids)
    assert found["verifications"] == [as_json(v, "code_hash") for v in verifications]
    assert [v["code_hash"] for v in found["verifications"]] == ["(withheld)"] * 2
    assert [c["reason"] for c in found["closures"]] == ["Kein Impfstoff"]
    assert found["sessions"] == []
    assert "Quentin" not in str(found)


async def test_export_refusals_do_not_say_which_part_was_wrong(env: Env) -> None:
    (pair,) = await env.add_pairs(1)
    booking = await env.book(pair, "p")
    answers = []
    for body in ({"booking_code": booking["booking_code"], "birth_date": "01.01.1950"},
                 {"booking_code": "ABCD-EFGH", "birth_date": OLD},
                 {"booking_code": "not a code", "birth_date": OLD},
                 {"booking_code": 12, "birth_date": OLD}):
        status, answer = await admin(env, "POST", "/admin/persons/export", json=body)
        assert status == 404, body
        answers.append(answer)
    assert all(answer == answers[0] for answer in answers)
    for body in ({"booking_code": booking["booking_code"], "birth_date": "gestern"},
                 {"booking_code": booking["booking_code"]}):
        status, answer = await admin(env, "POST", "/admin/persons/export", json=body)
        assert status == 400 and "birth_date" in answer["message"]
    status, answer = await admin(env, "POST", "/admin/persons/export", json=[1])
    assert status == 422 and answer["message"]
    async with env.admin.post("/admin/persons/export", data="{", headers=AUTH) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "json_invalid"
    status, answer = await admin(env, "POST", "/admin/purge", json={"dry_run": "ja"})
    assert status == 422 and answer["message"]
