"""Adaptive admission against a fixed rate, with real processes (issue 15).

    .venv/bin/python -m bench.adaptive --quick   # short phases, both modes, under a minute
    .venv/bin/python -m bench.adaptive           # the issue's phases, ~5 min per mode

One run per mode (`fixed`: the rate is the healthy capacity; `adaptive`: rate_min small,
rate_max the healthy capacity), each on a fresh stack: a private Redis, two `python -m
queue_gate` processes, the real booking backend on a private PostgreSQL, the SMS stand-in,
and `bench.standin` between the gates and the backend, whose capacity the run sets:

    healthy (full capacity) -> half capacity -> dead (hang: answers nothing, connections
    stay open, as a SIGSTOPped process; or crash: port closed) -> healthy again

Visitors arrive at the same seeded times in both runs, a steady stream faster than the
rate so the line never empties; each joins through gate n % 2, polls as told, and once
admitted books through the same gate over the real path (`bench.bookings.Person`: offers,
hold, details, the code from the SMS stand-in, confirm; a 503 with Retry-After is tried
again after it). Counted per mode: admissions made while the backend answered nothing
(the admin API's `admitted`, sampled each second, between the dead phase's bounds; and
from the moment the gate said the backend was down), visitors who saw a 5xx other than a
503 with Retry-After or got no answer, visitors who saw the 503 "recovering" and "busy"
answers, backend p99 latency while degraded (at the stand-in, and at the visitors), bookings
completed (the database), and the time from recovery until the effective rate is back at
rate_max. An admission counts as *spent* on the dead backend when its visitor's pass came
while the backend answered nothing and that visitor did not book by the run's end (saw an
error, gave up, or their pass lapsed): a visitor told "recovering" who books once the
backend answers again spent nothing. Prints a side-by-side table; results JSON in --out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp

from bench.bookings import (
    ROOM,
    AiohttpTransport,
    Answer,
    GaveUp,
    NoAnswer,
    Person,
    Tally,
    Transport,
    database_counts,
    load_pairs,
    percentile,
)
from bench.launch import admin_room
from bench.procs import ADMIN_TOKEN, ROOT, SECRET, Proc, stack, visitor_address
from devtools.servers import private_postgres, private_redis
from queue_gate.proxy import BACKEND_RETRY_S, RECOVERING_RETRY_S
from vaccine_queue.contract import PassCodec

log = logging.getLogger(__name__)

Mode = Literal["fixed", "adaptive"]
DeadKind = Literal["hang", "crash"]
GATES = 2
# Pairs at the one centre: more than any run books, so nobody meets "sold out".
PAIRS = 10_000  # 1,000 units per slot, the most one slot may hold
VISITOR_TIMEOUT_S = 70.0  # beyond the gate's own 60 s backend timeout: its answer is seen
RETRY_CAP_S = 30.0  # a 503's Retry-After is honoured in full, as the gate's page does


@dataclass(frozen=True)
class Plan:
    healthy_s: float
    half_s: float
    dead_s: float
    recovery_s: float
    rate: int  # fixed: the rate; adaptive: rate_max (both the healthy capacity, below)
    rate_min: int
    slots: int  # the stand-in's requests at once while healthy (half: slots // 2) ...
    service_ms: float  # ... each held at least this long
    backlog: int  # visitors who arrive in the first two seconds
    arrival_factor: float  # then arrivals (Poisson) at this multiple of `rate`
    connections_per_gate: int  # QUEUE_GATE_BACKEND_MAX_CONNECTIONS
    dead: DeadKind
    seed: int = 2021
    hint: str = "slots"  # the capacity hint: the stand-in's slots, or the backend's own

    @property
    def total_s(self) -> float:
        return self.healthy_s + self.half_s + self.dead_s + self.recovery_s

    @property
    def capacity_per_minute(self) -> float:
        """Bookings per minute the healthy stand-in can serve: 4 gate requests each."""
        return self.slots / (self.service_ms / 1000) * 60 / 4


# 6 slots x 200 ms = 30 requests/s = 450 bookings/min at most; the rate is 80 % of that
# (360/min), the "healthy capacity" an operator would set. At half (225/min) it is too much.
FULL = Plan(healthy_s=30, half_s=120, dead_s=30, recovery_s=90, rate=360, rate_min=30,
            slots=6, service_ms=200, backlog=200, arrival_factor=1.3,
            connections_per_gate=16, dead="hang")
QUICK = Plan(healthy_s=3, half_s=5, dead_s=6, recovery_s=6, rate=360, rate_min=30,
             slots=6, service_ms=200, backlog=60, arrival_factor=1.3,
             connections_per_gate=16, dead="hang")


@dataclass
class Seen:
    """What the visitors saw, by visitor number."""

    recovering: set[int] = field(default_factory=set)  # 503 + Retry-After 10
    busy: set[int] = field(default_factory=set)  # 503 + Retry-After 30
    errors: set[int] = field(default_factory=set)  # any other 5xx, or no answer at all
    error_kinds: Counter[str] = field(default_factory=Counter)
    answers_503: Counter[str] = field(default_factory=Counter)
    # (sent, unix seconds; latency, seconds; status) of every booking request via the gate
    calls: list[tuple[float, float, int]] = field(default_factory=list)
    joined: int = 0
    admitted: int = 0
    admitted_at: dict[int, float] = field(default_factory=dict)  # when their pass came
    booked: set[int] = field(default_factory=set)  # whose confirm was answered 200/201

    def saw(self, n: int, status: int, retry_after: str | None, what: str) -> None:
        if status == 503 and retry_after == str(RECOVERING_RETRY_S):
            self.recovering.add(n)
            self.answers_503["recovering"] += 1
        elif status == 503 and retry_after == str(BACKEND_RETRY_S):
            self.busy.add(n)
            self.answers_503["busy"] += 1
        elif status >= 500:
            self.errors.add(n)
            self.error_kinds[f"{what}_{status}"] += 1


class Watched:
    """A person's transport that tells `Seen` what came back (bench.bookings.Transport)."""

    def __init__(self, inner: Transport, n: int, seen: Seen) -> None:
        self.inner = inner
        self.n = n
        self.seen = seen

    async def _watch(self, what: str, sent: float, call: Any) -> Answer:
        try:
            answer: Answer = await call
        except NoAnswer as exc:
            self.seen.errors.add(self.n)
            self.seen.error_kinds[f"{what}_no_answer_{exc}"] += 1
            raise
        status, retry_after, _doc = answer
        self.seen.calls.append((sent, time.time() - sent, status))
        self.seen.saw(self.n, status, retry_after, what)
        return answer

    async def post(self, url: str, body: dict[str, str], headers: dict[str, str]) -> Answer:
        answer = await self._watch("book", time.time(), self.inner.post(url, body, headers))
        if url.endswith("/confirm") and answer[0] in (200, 201):
            self.seen.booked.add(self.n)
        return answer

    async def get(self, url: str, params: dict[str, str]) -> Answer:
        return await self.inner.get(url, params)  # the SMS stand-in, not the gate


def schedule(plan: Plan) -> list[float]:
    """Arrival offsets (seconds from the start), the same for every mode."""
    rng = random.Random(plan.seed)
    times = sorted(rng.uniform(0, 2) for _ in range(plan.backlog))
    per_s = plan.rate * plan.arrival_factor / 60
    t = 2.0
    while t < plan.total_s:
        t += rng.expovariate(per_s)
        times.append(t)
    return times


async def visitor(n: int, at: float, gate: str, session: aiohttp.ClientSession, sms: str,
                  tally: Tally, seen: Seen, passes: PassCodec) -> None:
    """Join, wait as told, book through the gate with the pass."""
    await asyncio.sleep(max(at - time.time(), 0.0))
    me = {"X-Forwarded-For": visitor_address(n), "Accept": "application/json"}
    try:
        async with session.post(f"{gate}/queue/api/join", headers=me) as response:
            body = await response.json(content_type=None) if response.status < 500 else None
            status, retry_after = response.status, response.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        seen.errors.add(n)
        seen.error_kinds[f"join_no_answer_{type(exc).__name__}"] += 1
        return
    seen.saw(n, status, retry_after, "join")
    if status != 201 or body is None:
        seen.error_kinds[f"join_{status}"] += 1
        return
    seen.joined += 1
    headers = {**me, "Authorization": f"Bearer {body['ticket']}"}
    while body["state"] != "admitted":
        await asyncio.sleep(float(body["poll_after_s"]))
        try:
            async with session.get(f"{gate}/queue/api/status", headers=headers) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
                polled = await response.json(content_type=None) if status < 500 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            seen.errors.add(n)
            seen.error_kinds[f"status_no_answer_{type(exc).__name__}"] += 1
            continue  # a person would look again
        seen.saw(n, status, retry_after, "status")
        if status != 200 or polled is None:
            seen.error_kinds[f"status_{status}"] += 1
            await asyncio.sleep(5)
            continue
        body = polled
    seen.admitted += 1
    seen.admitted_at[n] = time.time()
    person = Person(n, Watched(AiohttpTransport(session), n, seen), f"{gate}/api/v1", sms,
                    tally, passes, pass_token=body["pass"], retry_cap_s=RETRY_CAP_S)
    with contextlib.suppress(GaveUp):
        await person.book()


async def sample_room(gate: Proc, samples: list[dict[str, Any]], stop: asyncio.Event) -> None:
    """The room as gate 0's admin API tells it, once a second."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            began = time.time()
            try:
                doc = await admin_room(session, gate, ROOM)
                samples.append({"t": round(time.time(), 3), "admitted": doc["admitted"],
                                "waiting": doc["waiting"],
                                "effective": doc["effective_rate_per_minute"],
                                "backend": doc["backend"]})
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("admin sample failed: %s", exc)
            await asyncio.sleep(max(1.0 - (time.time() - began), 0.0))


async def set_phase(session: aiohttp.ClientSession, standin: Proc, phase: str) -> None:
    async with session.put(f"{standin.admin_url}/phase/{phase}") as response:
        response.raise_for_status()


async def drive(plan: Plan, standin: Proc, start: float) -> dict[str, float]:
    """Move the stand-in through the phases; the unix time each one began."""
    bounds: dict[str, float] = {"healthy": start}
    async with aiohttp.ClientSession() as session:
        at = start
        for phase, length in (("half", plan.healthy_s), (plan.dead, plan.half_s),
                              ("recovered", plan.dead_s)):
            at += length
            await asyncio.sleep(max(at - time.time(), 0.0))
            bounds["dead" if phase == plan.dead else phase] = time.time()
            await set_phase(session, standin, "healthy" if phase == "recovered" else phase)
        await asyncio.sleep(max(at + plan.recovery_s - time.time(), 0.0))
        bounds["end"] = time.time()
    return bounds


def admitted_at(samples: list[dict[str, Any]], t: float) -> float:
    """`admitted` at unix time t, interpolated between the samples around it."""
    before = [s for s in samples if s["t"] <= t]
    after = [s for s in samples if s["t"] >= t]
    if not before:
        return float(after[0]["admitted"])
    if not after:
        return float(before[-1]["admitted"])
    a, b = before[-1], after[0]
    if b["t"] == a["t"]:
        return float(a["admitted"])
    share = (t - a["t"]) / (b["t"] - a["t"])
    return float(a["admitted"] + share * (b["admitted"] - a["admitted"]))


def figures(plan: Plan, mode: Mode, bounds: dict[str, float], samples: list[dict[str, Any]],
            records: list[list[Any]], seen: Seen, tally: Tally,
            db: dict[str, int]) -> dict[str, Any]:
    dead, recovered, half = bounds["dead"], bounds["recovered"], bounds["half"]
    spent_dead = admitted_at(samples, recovered) - admitted_at(samples, dead)
    down = [s["t"] for s in samples if dead <= s["t"] <= recovered and s["backend"] == "down"]
    detected = down[0] if down else None
    # Between two samples both taken while dead (no interpolation across the recovery):
    # what the room admitted after gate 0 saw the decision "down".
    last_dead = [s["admitted"] for s in samples if dead <= s["t"] < recovered]
    first_down = next((s["admitted"] for s in samples if s["t"] == detected), None)
    spent_after_detection = (last_dead[-1] - first_down
                             if first_down is not None and last_dead else None)
    up_again = next((s["t"] for s in samples
                     if s["t"] >= recovered and s["backend"] == "up"), None)
    full = next((s["t"] for s in samples
                 if s["t"] >= recovered and (s["effective"] or 0) >= plan.rate), None)
    # Requests sent and answered within the phase (not those the dead phase held).
    degraded = [r[1] * 1000 for r in records if half <= r[0] and r[0] + r[1] < dead]
    healthy = [r[1] * 1000 for r in records if r[0] + r[1] < half]
    via_gate_degraded = [c[1] * 1000 for c in seen.calls if half <= c[0] and c[0] + c[1] < dead]
    # Spent: a visitor whose pass came while the backend answered nothing (their turn came
    # then, or just before and they saw it then) and who did not book by the run's end.
    passed_while_dead = [n for n, t in seen.admitted_at.items() if dead <= t < recovered]
    spent = [n for n in passed_while_dead if n not in seen.booked]
    per_phase = {
        name: round((admitted_at(samples, b) - admitted_at(samples, a)) * 60
                    / max(b - a, 1e-3), 1)
        for name, a, b in (("healthy", bounds["healthy"], half), ("half", half, dead),
                           ("dead", dead, recovered), ("recovery", recovered, bounds["end"]))
    }
    return {
        "mode": mode,
        "admissions_while_dead": round(spent_dead, 1),
        "dead_detected_after_s": None if detected is None else round(detected - dead, 1),
        "admissions_after_detection": None if spent_after_detection is None
        else round(spent_after_detection, 1),
        "passes_while_dead": len(passed_while_dead),
        "admissions_spent_while_dead": len(spent),
        "admitted_per_minute_by_phase": per_phase,
        "visitors_joined": seen.joined,
        "visitors_admitted_seen": seen.admitted,
        "visitors_5xx_or_no_answer": len(seen.errors),
        "error_kinds": dict(seen.error_kinds),
        "visitors_503_recovering": len(seen.recovering),
        "visitors_503_busy": len(seen.busy),
        "answers_503": dict(seen.answers_503),
        "backend_p99_ms_degraded": percentile(degraded, 0.99),
        "backend_p50_ms_degraded": percentile(degraded, 0.5),
        "backend_p99_ms_healthy": percentile(healthy, 0.99),
        "backend_requests_degraded": len(degraded),
        "via_gate_p99_ms_degraded": percentile(via_gate_degraded, 0.99),
        "bookings_confirmed_to_visitors": len(tally.confirmed),
        "bookings_in_database": db["bookings"],
        "bookings_lost": db["lost"],
        "oversold_units": db["oversold_units"],
        "backend_up_again_after_s": None if up_again is None
        else round(up_again - recovered, 1),
        "full_rate_after_recovery_s": None if mode == "fixed"
        else (None if full is None else round(full - recovered, 1)),
        "retries_gave_up": tally.retries_gave_up,
        "other_errors": dict(tally.other_errors),
    }


async def one_mode(plan: Plan, mode: Mode, workdir: Path) -> dict[str, Any]:
    """A fresh stack, the phases, the visitors; the figures of one mode."""
    with private_redis() as redis_url, private_postgres() as database_url, \
            stack(workdir / mode / "logs", redis_url) as st:
        sms = st.sms_gateway()
        backend = st.booking_backend(database_url, ROOM, f"{sms.url}/messages", days=None)
        standin = st.standin(backend.url, slots=plan.slots, service_ms=plan.service_ms,
                             hint=plan.hint)
        gates = [st.gate(f"gate-{i}", ROOM, rate_per_minute=plan.rate,
                         backend_url=standin.url,
                         extra_env={"QUEUE_GATE_BACKEND_MAX_CONNECTIONS":
                                    str(plan.connections_per_gate)})
                 for i in range(GATES)]
        connector = aiohttp.TCPConnector(limit=2000)
        async with aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=VISITOR_TIMEOUT_S)) as session:
            await load_pairs(session, backend.admin_url, PAIRS)
            if mode == "adaptive":
                async with session.patch(
                        f"{gates[0].admin_url}/admin/rooms/{ROOM}",
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                        json={"rate_mode": "adaptive", "rate_min": plan.rate_min,
                              "rate_max": plan.rate}) as response:
                    response.raise_for_status()
            await asyncio.sleep(1.0)  # every gate has ticked with the room's settings
            tally, seen, passes = Tally(), Seen(), PassCodec([SECRET])
            start = time.time() + 1.0
            arrivals = schedule(plan)
            visitors = [asyncio.create_task(visitor(n, start + at, gates[n % GATES].url,
                                                    session, sms.url, tally, seen, passes))
                        for n, at in enumerate(arrivals)]
            samples: list[dict[str, Any]] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_room(gates[0], samples, stop))
            bounds = await drive(plan, standin, start)
            stop.set()
            for task in visitors:
                task.cancel()
            await asyncio.gather(*visitors, sampler, return_exceptions=True)
            async with session.get(f"{standin.admin_url}/records") as response:
                records = (await response.json())["records"]
        # Requests the visitors left may still run in there: no need to wait for them.
        for proc in (*gates, standin, backend):
            st.stop(proc, wait_s=2.0)
        db = await database_counts(database_url, tally.confirmed)
    result = figures(plan, mode, bounds, samples, records, seen, tally, db)
    result["visitors_scheduled"] = len(arrivals)
    result["bounds"] = {k: round(v - start, 2) for k, v in bounds.items()}
    result["samples"] = [{**s, "t": round(s["t"] - start, 2)} for s in samples]
    # Per second of the run: the stand-in's answers, their p99 and the backend's own p99.
    result["standin_per_s"] = [
        {"t": second, "n": len(rows), "p99_ms": percentile([r[1] * 1000 for r in rows], 0.99),
         "backend_p99_ms": percentile([r[4] * 1000 for r in rows], 0.99)}
        for second, rows in sorted(by_second(records, start).items())]
    return result


def by_second(records: list[list[Any]], start: float) -> dict[int, list[list[Any]]]:
    seconds: dict[int, list[list[Any]]] = {}
    for record in records:
        seconds.setdefault(int(record[0] - start), []).append(record)
    return seconds


ROWS: tuple[tuple[str, str], ...] = (
    ("admissions_while_dead", "admissions while the backend answered nothing"),
    ("dead_detected_after_s", "  gate said 'down' after (s)"),
    ("admissions_after_detection", "  of them after that"),
    ("passes_while_dead", "visitors whose pass came while it answered nothing"),
    ("admissions_spent_while_dead", "  of them spent (not booked by the end)"),
    ("visitors_5xx_or_no_answer", "visitors who saw a 5xx (not 503+Retry-After) / nothing"),
    ("visitors_503_recovering", "visitors who saw 503 'recovering' (Retry-After 10)"),
    ("visitors_503_busy", "visitors who saw 503 'busy' (Retry-After 30)"),
    ("backend_p99_ms_degraded", "backend p99 latency while degraded (ms, stand-in)"),
    ("via_gate_p99_ms_degraded", "  the same at the visitors, through the gate (ms)"),
    ("backend_p99_ms_healthy", "backend p99 latency while healthy (ms, stand-in)"),
    ("bookings_in_database", "bookings completed (database)"),
    ("full_rate_after_recovery_s", "effective rate back at full after recovery (s)"),
)


def table(plan: Plan, results: dict[str, dict[str, Any]]) -> str:
    modes = list(results)
    lines = [f"phases: healthy {plan.healthy_s:.0f} s, half {plan.half_s:.0f} s, "
             f"{plan.dead} {plan.dead_s:.0f} s, recovery {plan.recovery_s:.0f} s; "
             f"rate {plan.rate}/min (stand-in capacity {plan.capacity_per_minute:.0f}/min, "
             f"half {plan.capacity_per_minute / 2:.0f}), rate_min {plan.rate_min}",
             f"{'':58s}" + "".join(f"{m:>12s}" for m in modes)]
    for key, label in ROWS:
        cells = "".join(f"{'-' if results[m][key] is None else results[m][key]!s:>12s}"
                        for m in modes)
        lines.append(f"{label:58s}{cells}")
    for m in modes:
        lines.append(f"{m}: admitted/min by phase {results[m]['admitted_per_minute_by_phase']}"
                     f"; errors {results[m]['error_kinds']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.adaptive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short phases (~25 s a mode)")
    parser.add_argument("--modes", default="fixed,adaptive",
                        help="comma-separated: fixed, adaptive")
    parser.add_argument("--dead", choices=("hang", "crash"), default=None,
                        help="how the backend dies (default hang: answers nothing)")
    parser.add_argument("--hint", choices=("slots", "backend"), default=None,
                        help="capacity hint the gates see: from the stand-in's free slots, "
                        "as the backend computes it from its pool (default), or the real "
                        "backend's own, passed through (it is not loaded: always high)")
    parser.add_argument("--phases", default=None, metavar="H,HALF,DEAD,REC",
                        help="phase lengths in seconds, e.g. 30,120,30,90")
    parser.add_argument("--rate", type=int, default=None,
                        help="fixed rate and rate_max per minute (default 360)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.hint is not None:
        plan = dataclasses.replace(plan, hint=args.hint)
    if args.rate is not None:
        plan = dataclasses.replace(plan, rate=args.rate)
    if args.phases is not None:
        h, half, dead, rec = (float(x) for x in args.phases.split(","))
        plan = dataclasses.replace(plan, healthy_s=h, half_s=half, dead_s=dead,
                                   recovery_s=rec)
    if args.dead is not None:
        plan = dataclasses.replace(plan, dead=args.dead)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out or ROOT / "bench" / "results" / f"adaptive-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results: dict[str, dict[str, Any]] = {}
    for mode in args.modes.split(","):
        if mode not in ("fixed", "adaptive"):
            parser.error(f"unknown mode {mode!r}")
        results[mode] = asyncio.run(one_mode(plan, cast(Mode, mode), out))
    (out / "results.json").write_text(json.dumps({"plan": asdict(plan), **results},
                                                 indent=1))
    # The report is what this command is for: stdout; the logs go to stderr.
    sys.stdout.write(table(plan, results) + f"results in {out}\n")


if __name__ == "__main__":
    main()
