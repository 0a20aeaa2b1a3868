"""Bookings per minute at p99 below 1 s (issue 11): the booking backend before (all state in
Redis, commit 6b6893a) and after (PostgreSQL), one and two backend processes, side by side.

For each of {redis, postgres} x {1, 2 processes}, a fresh store (Redis with AOF, fsync every
second, as deployed; PostgreSQL durable: fsync on, synchronous commit), the backend
process(es) on it, each on its own port, and the SMS stand-in. The same catalogue and slots
are loaded into both through the admin API: 1,000 units in each of 8 first-dose and 8
second-dose slots at each of 10 centres, far more than a run books, so throughput is
measured, not scarcity. The people's postcodes cycle over those 10 centres.

Then a closed loop: N bookers, each booking one person after another along the whole path
of `bench.bookings.Person` (offers -> hold -> details -> the code from the SMS stand-in ->
confirm), each person sent to the next backend process in turn. N steps up (5, 10, 20, ...)
for a fixed time each; a step ends when its time is up and every booking begun in it has
finished. Per step: bookings per minute, p50/p99 of every HTTP call of the path (the code
read from the SMS stand-in too: it waits for the outbox's delivery), 5xx and unexpected
answers, and CPU seconds of the load generator (this process), the backend process(es) and
the store (PostgreSQL: the postmaster and its children). The figure is the highest rate among
the steps whose p99 stays below 1 s. Stepping stops after the first step above it.

The generator uses the light `bench.httpclient` client and shares the machine's cores with
the servers (nothing is pinned; its CPU is reported beside theirs). After each variant the
admin API's counts are checked: bookings == those confirmed to people, booked units == 2 x
bookings, no centre with held + booked above its capacity.

The "before" backend runs from a checkout of commit 6b6893a (`--base-src`, e.g. a
`git worktree add --detach /tmp/base 6b6893a`); without one, `git archive` exports that
commit into a temporary folder. `python -m bench.booking_rate [--quick] [--rounds R]
[--after-src DIR] [--out DIR]`: a table on stdout, everything in DIR/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.bookings import (
    ROOM,
    Answer,
    GaveUp,
    NoAnswer,
    Person,
    Tally,
    load_pairs,
    percentile,
)
from bench.httpclient import Client, HTTPError
from bench.procs import ADMIN_TOKEN, ROOT, SECRET, Proc, Stack, stack
from devtools.processes import cpu_seconds
from devtools.servers import LocalServer, postgres_server, redis_server
from vaccine_queue.contract import PassCodec

log = logging.getLogger(__name__)

BASE_COMMIT = "6b6893a"  # the last commit with the booking backend's state all in Redis
CENTRES = 10  # the first 10 centres of the demo catalogue get slots; postcodes cycle over them
PAIRS_PER_CENTRE = 8000  # 8 first-dose and 8 second-dose slots of 1,000 units at each
SLOTS_PER_DOSE = 8
P99_LIMIT_MS = 1000.0
REQUEST_LIMIT_S = 30.0  # above the SMS stand-in's 20 s wait for a code
VARIANTS = (("redis", 1), ("redis", 2), ("postgres", 1), ("postgres", 2))


@dataclass(frozen=True)
class Plan:
    bookers: tuple[int, ...]  # N of each step, in order
    step_s: float  # how long each step starts new bookings
    warmup_s: float  # a first step at the smallest N whose figures are thrown away


FULL = Plan((5, 10, 20, 40, 80, 160, 320), 15.0, 5.0)
QUICK = Plan((4,), 1.5, 0.5)


class LightTransport:
    """`bench.bookings.Transport` over `bench.httpclient` (a fraction of aiohttp's CPU per
    request). It does not read headers, so a 503 carries no Retry-After and is never
    retried: here every 5xx is an error and is counted."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def post(self, url: str, body: dict[str, str], headers: dict[str, str]) -> Answer:
        return await self._request("POST", url, headers=headers, json_body=body)

    async def get(self, url: str, params: dict[str, str]) -> Answer:
        return await self._request("GET", url, params=params)

    async def _request(self, method: str, url: str, **kwargs: Any) -> Answer:
        try:
            status, raw = await self.client.request(method, url, limit_s=REQUEST_LIMIT_S,
                                                    **kwargs)
            return status, None, json.loads(raw) if status < 500 else None
        except (HTTPError, TimeoutError, ValueError) as exc:
            raise NoAnswer(type(exc).__name__) from exc


def catalogue_centres() -> list[tuple[str, str]]:
    """(centre id, its postcode) of the first CENTRES centres of the demo catalogue."""
    data = json.loads((ROOT / "booking_backend" / "data" / "niedersachsen.json").read_text())
    return [(c["id"], c["postcode"]) for c in data["centres"][:CENTRES]]


def store_cpu_seconds(server: LocalServer) -> float:
    """The store's CPU so far: the server process and its children (PostgreSQL's backends;
    those that have already exited are not counted)."""
    pid = server.process.pid
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += cpu_seconds(int(child))
    return total


@dataclass
class Servers:
    store: LocalServer
    backends: list[Proc]
    sms: Proc

    def cpu(self) -> dict[str, float]:
        return {"generator": time.process_time(),
                "backend": sum(b.cpu_seconds() for b in self.backends),
                "store": store_cpu_seconds(self.store)}


async def run_step(bookers: int, seconds: float, servers: Servers, http: LightTransport,
                   passes: PassCodec, numbers: Iterator[int],
                   postcodes: list[str]) -> tuple[dict[str, Any], Tally]:
    """N bookers, each booking person after person until `seconds` are up."""
    tally = Tally()
    apis = [f"{b.url}/api/v1" for b in servers.backends]
    deadline = time.monotonic() + seconds

    async def booker() -> None:
        while time.monotonic() < deadline:
            n = next(numbers)
            # Round robin over the processes, one person (all of their path) at a time.
            person = Person(n, http, apis[n % len(apis)], servers.sms.url, tally, passes,
                            postcode=postcodes[n % len(postcodes)])
            with contextlib.suppress(GaveUp):
                await person.book()

    cpu_before = servers.cpu()
    started = time.monotonic()
    await asyncio.gather(*(booker() for _ in range(bookers)))
    wall = time.monotonic() - started
    cpu_after = servers.cpu()
    calls = tally.every_call_ms
    result = {
        "bookers": bookers, "wall_s": round(wall, 2), "bookings": len(tally.confirmed),
        "bookings_per_min": round(len(tally.confirmed) / wall * 60, 1),
        "calls": len(calls), "p50_ms": percentile(calls, 0.5),
        "p99_ms": percentile(calls, 0.99), "max_ms": round(max(calls, default=0.0), 1),
        "p99_ms_by_step": {step: percentile(v, 0.99) for step, v in tally.latency_ms.items()},
        "errors": errors_of(tally),
        "sold_out": tally.sold_out, "hold_conflicts": tally.hold_conflicts,
        # CPU seconds used per wall second: 1.0 is one whole core (the machine has two).
        "cpu_cores": {name: round((cpu_after[name] - cpu_before[name]) / wall, 2)
                      for name in cpu_before},
        # CPU per booking: far less disturbed by the other work on the machine than rates.
        "cpu_ms_per_booking": {
            name: round((cpu_after[name] - cpu_before[name]) * 1000 / len(tally.confirmed), 2)
            if tally.confirmed else None for name in cpu_before},
    }
    return result, tally


def errors_of(tally: Tally) -> dict[str, int]:
    """Every 5xx and unexpected answer or failure, by step and status (empty when none)."""
    errors: Counter[str] = Counter(tally.status_5xx_other)
    errors.update(tally.other_errors)
    if tally.status_503:
        errors["503"] += tally.status_503
    return dict(errors)


async def admin_counts(backend: Proc) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            f"{backend.admin_url}/admin/stats",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as response:
        response.raise_for_status()
        stats: dict[str, Any] = await response.json()
    return stats


async def measure(variant: str, servers: Servers, plan: Plan) -> dict[str, Any]:
    """Load the slots, warm up, step N up; then check the counts."""
    centres = catalogue_centres()
    async with aiohttp.ClientSession() as session:
        await load_pairs(session, servers.backends[0].admin_url, PAIRS_PER_CENTRE,
                         centres=tuple(c for c, _ in centres), slots_per_dose=SLOTS_PER_DOSE)
    postcodes = [p for _, p in centres]
    passes = PassCodec([SECRET])
    numbers = itertools.count()
    client = Client()
    http = LightTransport(client)
    confirmed: list[str] = []
    steps: list[dict[str, Any]] = []
    try:
        warmup, tally = await run_step(plan.bookers[0], plan.warmup_s, servers, http, passes,
                                       numbers, postcodes)
        confirmed += tally.confirmed
        for bookers in plan.bookers:
            result, tally = await run_step(bookers, plan.step_s, servers, http, passes,
                                           numbers, postcodes)
            confirmed += tally.confirmed
            steps.append(result)
            log.info("%s N=%d: %.0f bookings/min, p50 %.1f ms, p99 %.1f ms, errors %s",
                     variant, bookers, result["bookings_per_min"], result["p50_ms"],
                     result["p99_ms"], result["errors"] or 0)
            if result["p99_ms"] >= P99_LIMIT_MS:
                break  # more bookers only wait longer
    finally:
        client.close()
    stats = await admin_counts(servers.backends[0])
    counts, per_centre = stats["counts"], stats["centres"]
    check = {
        "people": next(numbers), "confirmed_to_people": len(confirmed),
        "distinct_codes": len(set(confirmed)), "bookings": counts["bookings"],
        "booked_units": counts["booked"], "held_units": counts["held"],
        "oversold_units": sum(max(0, c["held"] + c["booked"] - c["capacity"])
                              for c in per_centre.values()),
        "capacity_units": counts["capacity"],
    }
    return {"variant": variant, "warmup": warmup, "steps": steps, "best": best_step(steps),
            "check": check}


def best_step(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The step with the most bookings per minute among those with p99 below 1 s and no
    error: an overloaded backend that answers 503 at once keeps p99 low too."""
    within = [s for s in steps if s["p99_ms"] < P99_LIMIT_MS and not s["errors"]]
    return max(within, key=lambda s: s["bookings_per_min"]) if within else None


@contextlib.contextmanager
def base_checkout(given: Path | None) -> Iterator[Path]:
    """The "before" backend's source: `given`, or commit BASE_COMMIT exported by git archive
    into a temporary folder (the repository itself is only read)."""
    if given is not None:
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="booking-rate-base-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASE_COMMIT],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


@contextlib.contextmanager
def servers_for(store: str, processes: int, running: Stack, base: Path,
                after: Path) -> Iterator[Servers]:
    server_of = (redis_server(appendonly=True) if store == "redis"
                 else postgres_server(durable=True))
    with server_of as server:
        sms = running.sms_gateway()
        backends = []
        for i in range(processes):
            name = f"booking-backend-{store}-{i + 1}"
            if store == "redis":
                backends.append(running.redis_booking_backend(
                    base, server.url, ROOM, f"{sms.url}/messages", name=name))
            else:
                backends.append(running.booking_backend(
                    server.url, ROOM, f"{sms.url}/messages", days=None, name=name,
                    src=after))
        try:
            yield Servers(server, backends, sms)
        finally:
            # Before the store goes: backends stopped after it would log its loss.
            running.stop_all()


def one_round(plan: Plan, base: Path, after: Path, logdir: Path,
              backwards: bool) -> list[dict[str, Any]]:
    """Every variant once, in VARIANTS' order (`backwards`: the other way round, so that a
    machine getting busier or quieter during a round favours neither store)."""
    results = []
    for store, processes in reversed(VARIANTS) if backwards else VARIANTS:
        variant = f"{store}-{processes}p"
        with stack(logdir / variant, redis_url="") as running, \
                servers_for(store, processes, running, base, after) as servers:
            results.append(asyncio.run(measure(variant, servers, plan)))
    return sorted(results, key=lambda r: [f"{s}-{p}p" for s, p in VARIANTS].index(r["variant"]))


def medians(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per variant, the median over rounds of each figure of its best step."""
    table = []
    for i, (store, processes) in enumerate(VARIANTS):
        found = (best_step(r[i]["steps"]) for r in rounds)
        bests = [b for b in found if b is not None]
        row: dict[str, Any] = {"variant": f"{store}-{processes}p", "rounds": len(rounds),
                               "rounds_with_a_step_below_1s": len(bests)}
        if bests:
            for key in ("bookings_per_min", "bookers", "p50_ms", "p99_ms"):
                row[key] = round(statistics.median(b[key] for b in bests), 1)
            for part in ("generator", "backend", "store"):
                row[f"cpu_{part}"] = round(statistics.median(
                    b["cpu_cores"][part] for b in bests), 2)
                row[f"cpu_ms_per_booking_{part}"] = round(statistics.median(
                    b["cpu_ms_per_booking"][part] for b in bests), 2)
            # Where stepping up first met errors (or p99 >= 1 s), per round.
            row["first_errors_at_bookers"] = [
                next((s["bookers"] for s in r[i]["steps"] if s["errors"]), None)
                for r in rounds]
            row["best_per_round"] = [b["bookings_per_min"] for b in bests]
        table.append(row)
    return table


def table_text(table: list[dict[str, Any]]) -> str:
    lines = ["best step (p99 < 1 s, no error), medians over rounds",
             f"{'variant':12s} {'bookings/min':>12s} {'N':>5s} {'p50 ms':>8s} {'p99 ms':>8s} "
             "cpu cores gen/backend/store  cpu ms/booking backend/store  per round"]
    for row in table:
        if "bookings_per_min" not in row:
            lines.append(f"{row['variant']:12s} no step with p99 < 1 s")
            continue
        lines.append(
            f"{row['variant']:12s} {row['bookings_per_min']:12.0f} {row['bookers']:5.0f} "
            f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
            f"{row['cpu_generator']:.2f}/{row['cpu_backend']:.2f}/{row['cpu_store']:.2f}"
            f"{'':16s}{row['cpu_ms_per_booking_backend']:5.1f}/"
            f"{row['cpu_ms_per_booking_store']:4.1f}{'':17s}{row['best_per_round']}")
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"steps of {QUICK.bookers} bookers, {QUICK.step_s:g} s each")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--base-src", type=Path, default=None,
                        help=f"a checkout of {BASE_COMMIT} (default: git archive of it)")
    parser.add_argument("--after-src", type=Path, default=ROOT,
                        help="where the PostgreSQL backend runs from (default: this checkout;"
                        " a snapshot keeps a long run clear of edits made meanwhile)")
    parser.add_argument("--report", type=Path, default=None,
                        help="print the table of an earlier run's results.json; run nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench-booking-rate")
    args = parser.parse_args()
    if args.report is not None:
        earlier = json.loads(args.report.read_text())
        sys.stdout.write(table_text(medians(earlier["rounds"])) + "\n")
        return
    plan = QUICK if args.quick else FULL
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.out.mkdir(parents=True, exist_ok=True)
    rounds: list[list[dict[str, Any]]] = []
    with base_checkout(args.base_src) as base:
        for k in range(args.rounds):
            rounds.append(one_round(plan, base, args.after_src.resolve(),
                                    args.out / f"round-{k + 1}", k % 2 == 1))
            table = medians(rounds)
            (args.out / "results.json").write_text(json.dumps(
                {"plan": asdict(plan), "base_commit": BASE_COMMIT, "table": table,
                 "rounds": rounds}, indent=1))
    # The report is what this command is for: it goes to stdout, the logs to stderr.
    sys.stdout.write(table_text(table) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
