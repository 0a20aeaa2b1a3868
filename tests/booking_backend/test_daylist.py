"""The centre's day list and check-in through the admin API and the CLI, against bookings
made through the public API (direct, cancelled, and handed to the waiting list)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.booking_backend.conftest import (
    ADMIN_TOKEN,
    BERLIN,
    CENTRE,
    FIRST_DAY,
    HOME_POSTCODE,
    OLD,
    SECOND_DAY,
    Env,
    MakeEnv,
    local,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = f"/admin/centres/{CENTRE}/days/{FIRST_DAY.isoformat()}"


async def admin(env: Env, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    async with env.admin.request(method, path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


async def mark(env: Env, code: str, dose: str, status: str) -> tuple[int, Any]:
    return await admin(env, "POST", f"/admin/bookings/{code}/attendance",
                       json={"dose": dose, "status": status})


async def booked_day(env: Env) -> dict[str, str]:
    """Three bookings at 8:00, 8:10, 8:20 on FIRST_DAY; the 8:20 one is cancelled and its
    pair goes to the person waiting; 8:30 stays free. Returns name -> booking code."""
    pairs = await env.add_pairs(4)
    codes = {}
    for i, name in enumerate(("Anna Alt", "Bernd Bauer", "Carla Storno")):
        booking = await env.book(pairs[i], f"t{i}", name=name, contact=f"+491510000000{i}")
        codes[name] = booking["booking_code"]
    status, _ = await env.api("POST", "/api/v1/waitlist", "w", json={
        "birth_date": "1939-03-01", "postcode": HOME_POSTCODE, "name": "Wilma Warte",
        "contact": "+4915100000099"})
    assert status == 201
    status, body = await env.api("POST", "/api/v1/bookings/cancel", "t2", json={
        "booking_code": codes["Carla Storno"], "birth_date": OLD})
    assert (status, body["status"]) == (200, "cancelled"), body
    assigned = await env.backend.db.fetchrow(
        "SELECT code FROM bookings WHERE source = 'waitlist'")
    assert assigned is not None
    codes["Wilma Warte"] = assigned["code"]
    return codes


@pytest.fixture
async def day_env(make_env: MakeEnv) -> tuple[Env, dict[str, str]]:
    env = await make_env(cancel_requires_code=False)
    return env, await booked_day(env)


async def test_the_day_list_matches_the_bookings(day_env: tuple[Env, dict[str, str]]) -> None:
    env, codes = day_env
    status, body = await admin(env, "GET", DAY)
    assert status == 200
    assert body["centre"] == {"id": CENTRE, "name": body["centre"]["name"]}
    assert body["date"] == "2021-01-11" and body["timezone"] == "Europe/Berlin"
    seen = [(line["time"], line["name"], line["dose"], line["booking_status"], line["source"])
            for line in body["lines"]]
    assert seen == [
        ("08:00", "Anna Alt", "first", "active", "api"),
        ("08:10", "Bernd Bauer", "first", "active", "api"),
        # The cancelled booking stays on the list, marked; its pair went to the waiting list.
        ("08:20", "Carla Storno", "first", "cancelled", "api"),
        ("08:20", "Wilma Warte", "first", "active", "waitlist"),
    ]
    by_name = {line["name"]: line for line in body["lines"]}
    assert {name: line["booking_code"] for name, line in by_name.items()} == codes
    assert by_name["Anna Alt"]["birth_date"] == "1938-12-24"
    assert by_name["Wilma Warte"]["birth_date"] == "1939-03-01"
    assert by_name["Anna Alt"]["start"] == local(FIRST_DAY, 8)
    assert all(line["attendance"] is None and line["flag"] is None for line in body["lines"])
    assert body["counts"] == {"due": 3, "attended": 0, "no_show": 0, "unmarked": 3,
                              "cancelled": 1}
    # The second doses, 21 days later, in their own list; nothing on the day in between.
    status, second = await admin(env, "GET", f"/admin/centres/{CENTRE}/days/"
                                             f"{SECOND_DAY.isoformat()}")
    assert [(line["time"], line["dose"]) for line in second["lines"]] == [
        ("08:00", "second"), ("08:10", "second"), ("08:20", "second"), ("08:20", "second")]
    status, empty = await admin(env, "GET", f"/admin/centres/{CENTRE}/days/2021-01-12")
    assert (status, empty["lines"], empty["counts"]["due"]) == (200, [], 0)
    status, other = await admin(env, "GET", f"/admin/centres/wolfsburg/days/{FIRST_DAY}")
    assert (status, other["lines"]) == (200, [])


async def test_the_csv_has_stable_columns(day_env: tuple[Env, dict[str, str]]) -> None:
    env, codes = day_env
    for path in (f"{DAY}.csv", f"{DAY}?format=csv"):
        async with env.admin.get(path, headers=AUTH) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
            assert "attachment" in resp.headers["Content-Disposition"]
            text = await resp.text()
        rows = list(csv.DictReader(io.StringIO(text)))
        assert text.splitlines()[0] == ("date,time,dose,name,birth_date,booking_code,"
                                        "booking_status,attendance,marked_at,flag,source")
        assert [(r["time"], r["name"], r["booking_status"]) for r in rows] == [
            ("08:00", "Anna Alt", "active"), ("08:10", "Bernd Bauer", "active"),
            ("08:20", "Carla Storno", "cancelled"), ("08:20", "Wilma Warte", "active")]
        assert rows[0]["date"] == "2021-01-11" and rows[0]["birth_date"] == "1938-12-24"
        assert rows[3]["booking_code"] == codes["Wilma Warte"]


async def test_marks_are_idempotent_and_counted_once(
        day_env: tuple[Env, dict[str, str]]) -> None:
    env, codes = day_env
    anna, bernd = codes["Anna Alt"], codes["Bernd Bauer"]
    # Friday before: Monday's doses cannot be marked yet.
    status, body = await mark(env, anna, "first", "attended")
    assert (status, body["error"]) == (409, "dose_not_due")
    assert "not due" in body["message"]
    env.clock.now = local(FIRST_DAY, 7, 45)  # early at the desk: allowed on the day
    status, first = await mark(env, anna, "first", "attended")
    assert status == 200
    assert first == {"booking_code": anna, "dose": "first", "status": "attended",
                     "marked_at": local(FIRST_DAY, 7, 45), "previous": None, "changed": True}
    env.clock.advance(60)
    status, again = await mark(env, anna.lower().replace("-", ""), "first", "attended")
    assert status == 200 and again["changed"] is False
    assert again["marked_at"] == first["marked_at"]  # the first mark's time stays
    status, _ = await mark(env, bernd, "first", "attended")
    env.clock.advance(60)
    status, changed = await mark(env, bernd, "first", "no_show")
    assert (status, changed["changed"], changed["previous"]) == (200, True, "attended")
    # A dose of another day (the second, 21 days on) is still in the future.
    status, body = await mark(env, anna, "second", "attended")
    assert (status, body["error"]) == (409, "dose_not_due")
    status, body = await mark(env, codes["Carla Storno"], "first", "attended")
    assert (status, body["error"]) == (409, "booking_not_active")
    assert "cancelled" in body["message"]

    status, body = await admin(env, "GET", DAY)
    assert body["counts"] == {"due": 3, "attended": 1, "no_show": 1, "unmarked": 1,
                              "cancelled": 1}
    marks = {line["name"]: (line["attendance"], line["marked_at"]) for line in body["lines"]}
    assert marks["Anna Alt"] == ("attended", local(FIRST_DAY, 7, 45))
    assert marks["Bernd Bauer"][0] == "no_show"
    # Many desks at once, the same mark: one change, the rest answer "no change".
    results = await asyncio.gather(*(mark(env, codes["Wilma Warte"], "first", "attended")
                                     for _ in range(8)))
    assert sorted(r[1]["changed"] for r in results) == [False] * 7 + [True]
    for _ in range(2):  # every scrape reads the same state: counted once
        doses = await scrape_doses(env)
        assert {k: v for k, v in doses.items() if k[0] == CENTRE and k[1] == "today"} == {
            (CENTRE, "today", "attended"): 2, (CENTRE, "today", "no_show"): 1,
            (CENTRE, "today", "unmarked"): 0}
    assert doses[("wolfsburg", "today", "attended")] == 0  # every centre, zeros included
    # The gauges are read at most every 30 s (the read visits every dose of two days).
    assert (await mark(env, bernd, "first", "attended"))[1]["changed"]
    assert (await scrape_doses(env))[(CENTRE, "today", "attended")] == 2
    env.clock.advance(30)
    assert (await scrape_doses(env))[(CENTRE, "today", "attended")] == 3
    env.clock.now = local(FIRST_DAY + dt.timedelta(days=1), 9)
    doses = await scrape_doses(env)
    assert doses[(CENTRE, "yesterday", "attended")] == 3
    assert doses[(CENTRE, "today", "attended")] == 0


async def scrape_doses(env: Env) -> dict[tuple[str, str, str], float]:
    async with env.admin.get("/metrics") as resp:
        text = await resp.text()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "booking_centre_doses":
            for sample in family.samples:
                labels = sample.labels
                found[(labels["centre"], labels["day"], labels["attendance"])] = sample.value
    return found


async def test_a_second_dose_after_a_missed_first_is_flagged(
        day_env: tuple[Env, dict[str, str]]) -> None:
    env, codes = day_env
    env.clock.now = local(FIRST_DAY, 9)
    assert (await mark(env, codes["Anna Alt"], "first", "attended"))[0] == 200
    assert (await mark(env, codes["Bernd Bauer"], "first", "no_show"))[0] == 200
    env.clock.now = local(SECOND_DAY, 7, 30)
    status, body = await admin(env, "GET", f"/admin/centres/{CENTRE}/days/{SECOND_DAY}")
    assert status == 200
    flags = {line["name"]: line["flag"] for line in body["lines"]}
    assert flags == {"Anna Alt": None, "Bernd Bauer": "first_no_show",
                     "Wilma Warte": "first_unmarked", "Carla Storno": None}
    # Marked late (the desk caught up): the flag goes.
    assert (await mark(env, codes["Wilma Warte"], "first", "attended"))[0] == 200
    _, body = await admin(env, "GET", f"/admin/centres/{CENTRE}/days/{SECOND_DAY}")
    assert {line["name"]: line["flag"] for line in body["lines"]}["Wilma Warte"] is None


@pytest.mark.parametrize("day", ["2021-1-11", "20210111", "2021-02-30", "today", "2021-01-11x",
                                 "\uff12\uff10\uff12\uff11-01-11"])
async def test_malformed_days_are_refused_readably(env: Env, day: str) -> None:
    for path in (f"/admin/centres/{CENTRE}/days/{day}",
                 f"/admin/centres/{CENTRE}/days/{day}.csv"):
        status, body = await admin(env, "GET", path)
        assert (status, body["error"]) == (422, "day_invalid"), path
        assert "YYYY-MM-DD" in body["message"]


async def test_unknown_centres_codes_and_bad_bodies_are_refused_readably(env: Env) -> None:
    status, body = await admin(env, "GET", "/admin/centres/atlantis/days/2021-01-11")
    assert (status, body["error"]) == (404, "centre_unknown")
    assert body["message"] == "We do not know this centre."
    path = "/admin/bookings/ABCD-EFGH/attendance"
    status, body = await admin(env, "POST", path, json={"dose": "first", "status": "attended"})
    assert (status, body["error"]) == (404, "booking_unknown")
    status, body = await admin(env, "POST", "/admin/bookings/not-a-code/attendance",
                               json={"dose": "first", "status": "attended"})
    assert status == 404
    for payload, code in (({"dose": "third", "status": "attended"}, "dose_invalid"),
                          ({"dose": "first", "status": "late"}, "attendance_invalid"),
                          ({"dose": "first"}, "attendance_invalid"),
                          ([], "invalid"), ("x", "invalid")):
        status, body = await admin(env, "POST", path, json=payload)
        assert (status, body["error"]) == (422, code), payload
        assert body["message"]
    status, body = await admin(env, "POST", path, data=b"{not json",
                               headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (400, "json_invalid")
    # No token, wrong token: 401 for every new route.
    for method, target in (("GET", DAY), ("GET", f"{DAY}.csv"), ("POST", path)):
        async with env.admin.request(method, target, json={}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"] == "unauthorized"
        async with env.admin.request(method, target, json={},
                                     headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401


async def test_without_a_catalogue_the_list_is_not_ready(make_env: MakeEnv) -> None:
    env = await make_env(catalogue=False)
    status, body = await admin(env, "GET", DAY)
    assert (status, body["error"]) == (503, "not_ready")


async def test_the_cli_prints_the_csv(day_env: tuple[Env, dict[str, str]],
                                      tmp_path: Path) -> None:
    env, _ = day_env
    environ = {**os.environ, "BOOKING_ADMIN_URL": str(env.admin.make_url("")),
               "BOOKING_ADMIN_TOKEN": ADMIN_TOKEN}
    out = tmp_path / "list.csv"

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "booking_backend.cli", "day-list", *args, env=environ,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await process.communicate()
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    code, stdout, _ = await cli("--centre", CENTRE, "--date", FIRST_DAY.isoformat())
    assert code == 0
    assert stdout.splitlines()[0].startswith("date,time,dose,name")
    assert [row["name"] for row in csv.DictReader(io.StringIO(stdout))] == [
        "Anna Alt", "Bernd Bauer", "Carla Storno", "Wilma Warte"]
    code, _, _ = await cli("--centre", CENTRE, "--date", FIRST_DAY.isoformat(),
                           "--output", str(out))
    assert code == 0 and out.read_bytes().decode("utf-8") == stdout
    code, _, stderr = await cli("--centre", CENTRE, "--date", "11.01.2021")
    assert code == 1 and stderr.startswith("error: 422: The day must be given as YYYY-MM-DD")
    code, _, stderr = await cli("--centre", "atlantis", "--date", "2021-01-11")
    assert code == 1 and "404" in stderr


def test_days_are_local_days() -> None:
    from booking_backend.daylist import day_bounds

    start, end = day_bounds(dt.date(2021, 3, 28), BERLIN)  # clocks go forward: 23 hours
    assert end - start == 23 * 3600
    assert start == local(dt.date(2021, 3, 28), 0)
