"""Bookings on PostgreSQL under load (issue 11): many people, few dose pairs, the whole path.

Two runs, each on its own private PostgreSQL (fsync on: a `kill -9` must not lose a commit)
with the real booking backend (`python -m booking_backend.main`) and the SMS stand-in:

1. steady: `people` people, at most `in_flight` of them (so as many requests) at once,
   against exactly `pairs` dose pairs at one centre, loaded through the admin API. Each
   person books as the booking page does (offers -> hold, the next pair on 409 -> details ->
   the code from the SMS stand-in -> confirm) with a self-signed pass.
2. kill: the same, with PostgreSQL killed by SIGKILL once a third of the pairs are booked
   and restarted about 3 s later.

Counted per run: pairs booked (from the database), units oversold, 5xx answers other than a
503 with Retry-After, 503s and whether retrying them succeeded, bookings confirmed to a
person but missing from the database (lost), holds left live after the run and after the
hold time has passed, and p50/p99 latency per step. `--quick` is the small version the test
in tests/bench runs. `python -m bench.bookings [--quick] [--out results.json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import asyncpg

from bench.procs import ADMIN_TOKEN, ROOT, SECRET, Proc, stack, visitor_address
from devtools.servers import LocalServer, postgres_server
from vaccine_queue.contract import AdmissionPass, PassCodec

log = logging.getLogger(__name__)

ROOM = "bookings"
CENTRE = "braunschweig"  # the demo catalogue's centre in Braunschweig
POSTCODE = "38100"  # a Braunschweig postcode: every person is offered that centre
SLOTS_PER_DOSE = 10  # first-dose slots (and as many second-dose slots) the pairs spread over
SECOND_DOSE_AFTER_S = 28 * 86400  # inside the default 21-42 day interval
REQUEST_LIMIT_S = 30.0
RETRY_CAP_S = 1.0  # a person retries a 503 after Retry-After, but at most this long
RETRIES = 30  # 503s one step may meet before the person gives up
STEPS = ("offers", "hold", "details", "code", "confirm")


@dataclass(frozen=True)
class Plan:
    people: int
    in_flight: int
    pairs: int
    hold_seconds: int


@dataclass
class Tally:
    """What the people saw in one run."""

    confirmed: list[str] = field(default_factory=list)  # booking codes answered with 201
    sold_out: int = 0  # offers answered with no pair left
    hold_conflicts: int = 0  # 409 on hold: someone was faster
    status_5xx_other: Counter[str] = field(default_factory=Counter)  # not 503+Retry-After
    status_503: int = 0
    retries_ok: int = 0  # steps that met a 503 and then succeeded on a retry
    retries_gave_up: int = 0
    confirm_replayed: int = 0  # a retried confirm answered 200: booked by the attempt before
    kill_after: int = 0  # bookings confirmed before PostgreSQL is killed (0: never)
    kill_now: asyncio.Event = field(default_factory=asyncio.Event)
    other_errors: Counter[str] = field(default_factory=Counter)
    latency_ms: dict[str, list[float]] = field(
        default_factory=lambda: {step: [] for step in STEPS})
    # Every answered request's latency (ms), 5xx included: bench.booking_rate's p99.
    every_call_ms: list[float] = field(default_factory=list)


class GaveUp(Exception):
    """A step did not succeed; the person stops (counted where it happened)."""


class NoAnswer(Exception):
    """The request got no answer (connection error, timeout, unreadable body); the
    message names the cause's type."""


# (status, the Retry-After header or None, the JSON body; None for a 5xx)
Answer = tuple[int, str | None, Any]


class Transport(Protocol):
    """How a person's requests travel: aiohttp here, bench.httpclient in bench.booking_rate
    (whose generator must stay light). Raises `NoAnswer`."""

    async def post(self, url: str, body: dict[str, str], headers: dict[str, str]) -> Answer: ...

    async def get(self, url: str, params: dict[str, str]) -> Answer: ...


class AiohttpTransport:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(self, url: str, body: dict[str, str], headers: dict[str, str]) -> Answer:
        try:
            async with self.session.post(url, json=body, headers=headers) as response:
                status = response.status
                doc = await response.json(content_type=None) if status < 500 else None
                return status, response.headers.get("Retry-After"), doc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise NoAnswer(type(exc).__name__) from exc

    async def get(self, url: str, params: dict[str, str]) -> Answer:
        try:
            async with self.session.get(url, params=params) as response:
                status = response.status
                doc = await response.json(content_type=None) if status < 500 else None
                return status, response.headers.get("Retry-After"), doc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise NoAnswer(type(exc).__name__) from exc


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


class Person:
    """One person's whole booking through the backend's API."""

    def __init__(self, n: int, http: Transport, api: str, sms: str, tally: Tally,
                 passes: PassCodec, postcode: str = POSTCODE, *,
                 pass_token: str | None = None, retry_cap_s: float = RETRY_CAP_S) -> None:
        """`pass_token`: a pass the gate issued (the person books through the gate);
        without one the person signs their own and books at the backend directly.
        `retry_cap_s`: the longest wait after a 503 before trying again."""
        self.n = n
        self.http = http
        self.postcode = postcode
        self.api = api
        self.sms = sms
        self.tally = tally
        self.retry_cap_s = retry_cap_s
        if pass_token is None:
            admission = AdmissionPass(ROOM, f"bench-{n}", int(time.time()) + 3600)
            pass_token = passes.sign(admission)
        self.headers = {"X-Queue-Pass": pass_token, "X-Forwarded-For": visitor_address(n)}

    async def call(self, step: str, path: str, body: dict[str, str],
                   ok: tuple[int, ...]) -> tuple[int, Any]:
        """POST with retries on 503 + Retry-After; (status, JSON) for an `ok` status."""
        met_503 = False
        for _attempt in range(RETRIES):
            sent = time.monotonic()
            try:
                status, retry_after, doc = await self.http.post(f"{self.api}{path}", body,
                                                                self.headers)
            except NoAnswer as exc:
                self.tally.other_errors[f"{step}_{exc}"] += 1
                raise GaveUp from exc
            self.tally.every_call_ms.append((time.monotonic() - sent) * 1000)
            if status == 503 and retry_after is not None:
                self.tally.status_503 += 1
                met_503 = True
                await asyncio.sleep(min(float(retry_after), self.retry_cap_s))
                continue
            if status >= 500:
                self.tally.status_5xx_other[f"{step}_{status}"] += 1
                raise GaveUp
            self.tally.latency_ms[step].append((time.monotonic() - sent) * 1000)
            if status not in ok:
                reason = doc.get("error", "") if isinstance(doc, dict) else ""
                self.tally.other_errors[f"{step}_{status}_{reason}"] += 1
                raise GaveUp
            if met_503:
                self.tally.retries_ok += 1
            return status, doc
        self.tally.retries_gave_up += 1
        raise GaveUp

    async def book(self) -> None:
        n = self.n
        person = {"birth_date": f"19{30 + n % 15}-{1 + n % 12:02d}-{1 + n % 28:02d}",
                  "postcode": self.postcode}
        hold_id = None
        for _round in range(3):
            _status, found = await self.call("offers", "/offers", person, (200,))
            offers = found["offers"]
            if not offers:
                self.tally.sold_out += 1
                return
            for k in range(len(offers)):
                offer = offers[(n + k) % len(offers)]
                status, held = await self.call("hold", "/holds", {
                    **person, "first_slot": offer["first"]["slot"],
                    "second_slot": offer["second"]["slot"]}, (201, 409))
                if status == 201:
                    hold_id = held["hold_id"]
                    break
                self.tally.hold_conflicts += 1  # someone was faster: take the next pair
            if hold_id is not None:
                break
        if hold_id is None:
            self.tally.other_errors["no_pair_held_in_3_rounds"] += 1
            return
        contact = f"+4915{n:09d}"
        await self.call("details", f"/holds/{hold_id}/details",
                        {"name": f"Bench Person {n}", "contact": contact}, (202,))
        sent = time.monotonic()
        try:
            status, _retry_after, delivered = await self.http.get(f"{self.sms}/codes",
                                                                  {"to": contact})
        except NoAnswer as exc:
            self.tally.other_errors[f"code_{exc}"] += 1
            raise GaveUp from exc
        self.tally.every_call_ms.append((time.monotonic() - sent) * 1000)
        if status != 200:
            self.tally.other_errors["code_not_delivered"] += 1
            return
        code = delivered["code"]
        self.tally.latency_ms["code"].append((time.monotonic() - sent) * 1000)
        # 200: the hold was already booked, by an earlier attempt whose answer was a 503
        # (the commit went through as the connection to PostgreSQL broke): the same booking.
        status, booking = await self.call("confirm", f"/holds/{hold_id}/confirm",
                                          {"code": code}, (200, 201))
        if status == 200:
            self.tally.confirm_replayed += 1
        self.tally.confirmed.append(booking["booking_code"])
        if len(self.tally.confirmed) == self.tally.kill_after:
            self.tally.kill_now.set()


async def load_pairs(session: aiohttp.ClientSession, admin_url: str, pairs: int, *,
                     centres: tuple[str, ...] = (CENTRE,),
                     slots_per_dose: int = SLOTS_PER_DOSE) -> None:
    """The demo catalogue and exactly `pairs` dose pairs at each of `centres`, via the
    admin API: first doses in two days' time over `slots_per_dose` half-hourly slots, second
    doses 28 days after them, as many units of each. No slot can start both a pair and end
    one, so `pairs` pairs exist at each centre and no more."""
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with session.post(f"{admin_url}/admin/catalogue/demo", headers=auth) as response:
        response.raise_for_status()
    day = dt.datetime.now(dt.UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    first = int((day + dt.timedelta(days=2)).timestamp())
    slots = []
    for centre in centres:
        for i in range(slots_per_dose):
            units = pairs // slots_per_dose + (1 if i < pairs % slots_per_dose else 0)
            if units == 0:
                continue
            start = first + i * 1800
            slots.append({"centre": centre, "start": start, "capacity": units})
            slots.append({"centre": centre, "start": start + SECOND_DOSE_AFTER_S,
                          "capacity": units})
    async with session.post(f"{admin_url}/admin/slots", headers=auth,
                            json={"slots": slots, "waitlist_share": 0}) as response:
        response.raise_for_status()
        added = (await response.json())["units_added"]
    if added != 2 * pairs * len(centres):
        raise RuntimeError(f"loaded {added} units, expected {2 * pairs * len(centres)}")


async def database_counts(url: str, confirmed: list[str]) -> dict[str, int]:
    """What the database says: bookings, oversold units, live holds, lost confirmations."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(greatest(held + booked - capacity, 0)), 0) AS oversold,"
            " coalesce(sum(booked), 0) AS booked_units, coalesce(sum(held), 0) AS held_units,"
            " coalesce(sum(capacity), 0) AS capacity FROM slots")
        assert row is not None  # an aggregate without GROUP BY always has one row
        bookings = await conn.fetchval("SELECT count(*) FROM bookings WHERE status = 'active'")
        live_holds = await conn.fetchval("SELECT count(*) FROM holds WHERE status = 'held'")
        stored = {r["code"] for r in await conn.fetch("SELECT code FROM bookings")}
    finally:
        await conn.close()
    return {"bookings": int(bookings), "oversold_units": int(row["oversold"]),
            "booked_units": int(row["booked_units"]), "held_units": int(row["held_units"]),
            "capacity_units": int(row["capacity"]), "live_holds": int(live_holds),
            "lost": sum(1 for code in confirmed if code not in stored)}


async def kill_postgres(server: LocalServer, tally: Tally, down_s: float,
                        record: dict[str, float]) -> None:
    """SIGKILL the PostgreSQL once `tally.kill_after` bookings are confirmed; restart it
    `down_s` later (as after a crash: same data, same port)."""
    await tally.kill_now.wait()
    record["killed_after_bookings"] = len(tally.confirmed)
    server.process.kill()
    killed = time.monotonic()
    log.info("PostgreSQL killed (SIGKILL) after %d bookings", len(tally.confirmed))
    await asyncio.sleep(down_s)
    assert server.restart is not None
    await asyncio.to_thread(server.restart)
    record["down_s"] = round(time.monotonic() - killed, 2)
    log.info("PostgreSQL back after %.1f s", record["down_s"])


async def rush(plan: Plan, backend: Proc, sms: Proc, server: LocalServer,
               kill: bool) -> dict[str, Any]:
    tally = Tally()
    passes = PassCodec([SECRET])
    connector = aiohttp.TCPConnector(limit=plan.in_flight)
    timeout = aiohttp.ClientTimeout(total=REQUEST_LIMIT_S)
    result: dict[str, Any] = {"plan": asdict(plan), "kill": kill}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await load_pairs(session, backend.admin_url, plan.pairs)
        http = AiohttpTransport(session)
        gate = asyncio.Semaphore(plan.in_flight)
        most = 0
        active = 0

        async def one(n: int) -> None:
            nonlocal most, active
            async with gate:  # at most in_flight people, each with one request in flight
                active += 1
                most = max(most, active)
                try:
                    await Person(n, http, f"{backend.url}/api/v1", sms.url, tally,
                                 passes).book()
                except GaveUp:
                    pass
                finally:
                    active -= 1

        record: dict[str, float] = {}
        tally.kill_after = max(1, plan.pairs // 3) if kill else 0
        killer = (asyncio.create_task(kill_postgres(server, tally, 3.0, record))
                  if kill else None)
        started = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(plan.people)))
        result["wall_s"] = round(time.monotonic() - started, 1)
        if killer is not None:
            if not killer.done():  # fewer bookings than the trigger: say so, do not wait
                killer.cancel()
                record["not_killed"] = 1
            await asyncio.gather(killer, return_exceptions=True)
        result["postgres"] = record
        result["people_at_once"] = most
        result["after_run"] = await database_counts(server.url, tally.confirmed)
        # Holds of people who gave up between hold and confirm are given back at expiry.
        await asyncio.sleep(plan.hold_seconds + 1)
        async with session.post(f"{backend.admin_url}/admin/sweep",
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as swept:
            result["sweep"] = await swept.json()
        result["after_hold_time"] = await database_counts(server.url, tally.confirmed)
    result.update({
        "confirmed_to_people": len(tally.confirmed), "sold_out": tally.sold_out,
        "hold_conflicts": tally.hold_conflicts,
        "status_5xx_other": dict(tally.status_5xx_other), "status_503": tally.status_503,
        "retries_ok": tally.retries_ok, "retries_gave_up": tally.retries_gave_up,
        "confirm_replayed": tally.confirm_replayed,
        "other_errors": dict(tally.other_errors),
        "latency_ms": {step: {"n": len(v), "p50": percentile(v, 0.5),
                              "p99": percentile(v, 0.99),
                              "mean": round(statistics.fmean(v), 1) if v else 0.0}
                       for step, v in tally.latency_ms.items()},
    })
    return result


async def one_run(plan: Plan, logdir: Path, kill: bool) -> dict[str, Any]:
    """A fresh PostgreSQL, backend and SMS stand-in for one run."""
    with postgres_server(durable=True) as server, stack(logdir, redis_url="") as running:
        sms = running.sms_gateway()
        backend = running.booking_backend(
            server.url, ROOM, f"{sms.url}/messages", days=None,
            extra_env={"BOOKING_HOLD_SECONDS": str(plan.hold_seconds)})
        return await rush(plan, backend, sms, server, kill)


def summary(name: str, result: dict[str, Any]) -> str:
    after, later = result["after_run"], result["after_hold_time"]
    lines = [
        f"== {name}: {result['plan']['people']} people, {result['people_at_once']} at once, "
        f"{result['plan']['pairs']} pairs, {result['wall_s']} s",
        f"pairs booked (database): {after['bookings']}; confirmed to people: "
        f"{result['confirmed_to_people']}; lost: {after['lost']}; oversold units: "
        f"{after['oversold_units']} (booked {after['booked_units']} + held "
        f"{after['held_units']} of {after['capacity_units']})",
        f"5xx other than 503+Retry-After: {result['status_5xx_other'] or 0}; 503s: "
        f"{result['status_503']} (steps retried to success {result['retries_ok']}, "
        f"given up {result['retries_gave_up']}; confirms answered 200 on a retry "
        f"{result['confirm_replayed']})",
        f"live holds right after: {after['live_holds']}; after the hold time and a sweep: "
        f"{later['live_holds']} (held units {later['held_units']})",
        f"sold out: {result['sold_out']}; 409 on hold: {result['hold_conflicts']}; "
        f"other: {result['other_errors']}; postgres: {result['postgres']}",
    ]
    lines += [f"  {step:8s} n={v['n']:6d} p50={v['p50']:8.1f} ms p99={v['p99']:8.1f} ms"
              for step, v in result["latency_ms"].items()]
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1,000 people, 100 at once, 20 pairs, 10 s holds")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench-bookings")
    parser.add_argument("--no-kill", action="store_true", help="only the steady run")
    args = parser.parse_args()
    plan = (Plan(1000, 100, 20, 10) if args.quick else Plan(10_000, 1000, 100, 20))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name, kill in (("steady", False), ("kill", True)):
        if kill and args.no_kill:
            continue
        results[name] = asyncio.run(one_run(plan, args.out / name, kill))
        # The report is what this command is for: it goes to stdout, the logs to stderr.
        sys.stdout.write(summary(name, results[name]) + "\n")
        sys.stdout.flush()
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
