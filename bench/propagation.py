"""How long an operator's change takes to reach every waiting visitor, and what it costs:
`python -m bench.propagation [--visitors N] [--before DIR]`.

N simulated visitors wait in one room of a real gate process (on a private Redis) and follow
the waiting page's schedule: the personal status (`GET /queue/api/status`) every
`poll_after_s` the gate asks for (up to 120 s, jittered), and, where the gate has it, the
room-wide state (`GET /queue/api/room`) every `check_after_s` (6 s) x uniform(0.8, 1.2),
with If-None-Match; a new version shows at once (the personal status keeps its schedule,
but for passthrough, where the page collects its pass within 1-3 s). Each visitor starts at
a random point of its schedule (a steady state, not a synchronised start). After a warm-up
the room is paused with a message through the admin API; a visitor has seen the change when
an answer says so (the status's state, or the room state's version). Printed: the time from
the change to the median, 99th percentile and last visitor seeing it, and the requests per
second reaching the gate before and after the change, with the gate's CPU seconds per
second.

The room state goes through a stand-in for the compose stack's nginx (deploy/nginx.conf):
an in-process cache that keeps an answer for one second and sends one request at a time to
the gate (nginx's proxy_cache_lock). The requests that the cache answered are counted
apart: they are what the gate would see without a caching proxy in front.

`--before DIR`: a `queue_gate/` package from before the change (`git archive <commit>
queue_gate | tar -x -C DIR`); its pages have no room state, so its visitors see a change with
their next status poll. Both variants run one after the other on the same machine.

`--model`: the requests per second the schedule costs 100,000 waiting visitors, computed
from the same schedule (the issue's figure; the measured N is what this machine can
simulate beside the gate on two shared cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.launch import NO_BACKEND, join_tickets, next_visitor
from bench.procs import ADMIN_TOKEN, Proc, stack
from devtools.servers import private_redis

log = logging.getLogger(__name__)

ROOM = "propagation"
ROOM_CHECK_S = 6.0
JITTER = 0.2
CACHE_S = 1.0
NOSCRIPT_REFRESH_S = 8.0  # the waiting page's bound without JavaScript
MESSAGE = "Pause bis 8:30"
AFTER_WINDOW_S = 30.0


@dataclass
class Counts:
    """Requests by kind in a window of time."""

    status: int = 0
    room_to_gate: int = 0
    room_from_cache: int = 0
    errors: int = 0

    def total_to_gate(self) -> int:
        return self.status + self.room_to_gate


@dataclass
class Sim:
    """The visitors' shared state: the cache stand-in, counters, who has seen the change."""

    gate: Proc
    session: aiohttp.ClientSession
    with_room: bool
    counts: Counts = field(default_factory=Counts)
    changed_at: float | None = None
    seen_after: list[float] = field(default_factory=list)
    target: int = 0
    all_seen: asyncio.Event = field(default_factory=asyncio.Event)
    _cached: tuple[float, str, bytes] | None = None  # (fetched at, etag, body)
    _fetching: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def room_state(self) -> dict[str, Any]:
        """The room state through the one-second cache (one fetch at a time)."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < CACHE_S:
            self.counts.room_from_cache += 1
            return dict(json.loads(self._cached[2]))
        async with self._fetching:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= CACHE_S:
                headers = {"If-None-Match": self._cached[1]} if self._cached else {}
                async with self.session.get(f"{self.gate.url}/queue/api/room",
                                            headers=headers) as response:
                    self.counts.room_to_gate += 1
                    body = await response.read()
                    if response.status == 304 and self._cached is not None:
                        body = self._cached[2]
                    elif response.status != 200:
                        raise RuntimeError(f"room state answered {response.status}")
                    self._cached = (time.monotonic(), response.headers.get("ETag", ""), body)
            else:
                self.counts.room_from_cache += 1
            assert self._cached is not None
            return dict(json.loads(self._cached[2]))

    async def status(self, ticket: str) -> dict[str, Any]:
        async with self.session.get(f"{self.gate.url}/queue/api/status",
                                    headers={"Authorization": f"Bearer {ticket}"}) as response:
            self.counts.status += 1
            body: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RuntimeError(f"status answered {response.status}: {body}")
            return body

    def saw(self) -> None:
        if self.changed_at is not None:
            self.seen_after.append(time.monotonic() - self.changed_at)
            if len(self.seen_after) >= self.target:
                self.all_seen.set()


async def visitor(sim: Sim, ticket: str, first: dict[str, Any], rng: random.Random) -> None:
    """One waiting page's schedule, until cancelled at the end of the run."""
    loop = asyncio.get_running_loop()
    seen = False
    poll_due = loop.time() + rng.uniform(0, first["poll_after_s"])
    wake = asyncio.Event()

    def see() -> None:
        nonlocal seen
        if not seen and sim.changed_at is not None:
            seen = True
            sim.saw()

    async def statuses() -> None:
        nonlocal poll_due
        while True:
            wake.clear()
            delay = poll_due - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
                continue  # woken: the due time was brought forward; or due now
            try:
                body = await sim.status(ticket)
            except (aiohttp.ClientError, RuntimeError, TimeoutError):
                sim.counts.errors += 1
                poll_due = loop.time() + 10
                continue
            if body["state"] == "paused":
                see()
            poll_due = loop.time() + max(body["poll_after_s"], 1)

    async def rooms(version: str) -> None:
        nonlocal poll_due
        await asyncio.sleep(rng.uniform(0, ROOM_CHECK_S))
        while True:
            try:
                room = await sim.room_state()
            except (aiohttp.ClientError, RuntimeError, TimeoutError):
                sim.counts.errors += 1
                room = {"version": version}
            if room["version"] != version:
                version = room["version"]
                see()  # the page shows the new mode and message now
                soon = loop.time() + rng.uniform(1, 3)
                if room["mode"] == "passthrough" and poll_due > soon:  # its pass, at once
                    poll_due = soon
                    wake.set()
            await asyncio.sleep(ROOM_CHECK_S * rng.uniform(1 - JITTER, 1 + JITTER))

    loops = [statuses(), rooms(first["version"])] if sim.with_room else [statuses()]
    await asyncio.gather(*loops)


def admin_patch(gate: Proc, changes: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 (a loopback URL we built)
        f"{gate.admin_url}/admin/rooms/{ROOM}", data=json.dumps(changes).encode(),
        method="PATCH", headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


@dataclass
class Result:
    variant: str
    visitors: int
    seen: list[float]
    rps_before: float
    rps_after: float
    cpu_before: float
    cpu_after: float
    cache_rps_before: float
    errors: int

    def row(self) -> str:
        seen = sorted(self.seen)
        missing = self.visitors - len(seen)
        last = f"{seen[-1]:.1f}" if seen and not missing else f">cap ({missing} not yet)"
        p99 = seen[min(len(seen) - 1, int(0.99 * self.visitors))] if seen else float("nan")
        return (f"| {self.variant} | {self.visitors:,} | {statistics.median(seen):.1f} | "
                f"{p99:.1f} | {last} | {self.rps_before:.1f} | {self.rps_after:.1f} | "
                f"{self.cpu_before:.3f} | {self.cache_rps_before:.0f} | {self.errors} |")


async def run_variant(gate: Proc, variant: str, visitors: int, warmup_s: float,
                      cap_s: float, seed: int) -> Result:
    with_room = variant == "after"
    tickets = await join_tickets(gate, visitors, first_visitor=next_visitor())
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=200)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        sim = Sim(gate, session, with_room, target=visitors)
        version = (await sim.room_state())["version"] if with_room else ""
        sim.counts = Counts()
        firsts: list[dict[str, Any]] = []
        for start in range(0, len(tickets), 100):  # the page as loaded: its first status
            firsts.extend(await asyncio.gather(*(sim.status(t)
                                                 for t in tickets[start:start + 100])))
        for body in firsts:
            body["version"] = version
        sim.counts = Counts()
        tasks = [asyncio.create_task(visitor(sim, t, f, rng))
                 for t, f in zip(tickets, firsts, strict=True)]
        started, cpu0 = time.monotonic(), gate.cpu_seconds()
        await asyncio.sleep(warmup_s)
        before = sim.counts
        window = time.monotonic() - started
        cpu1 = gate.cpu_seconds()
        sim.counts = Counts()
        await asyncio.to_thread(admin_patch, gate, {"mode": "paused", "message": MESSAGE})
        sim.changed_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sim.all_seen.wait(), cap_s)
        # Requests after the change over at least AFTER_WINDOW_S (what follows a change).
        await asyncio.sleep(max(AFTER_WINDOW_S - (time.monotonic() - sim.changed_at), 0))
        after_window = time.monotonic() - sim.changed_at
        after, cpu2 = sim.counts, gate.cpu_seconds()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Result(variant, visitors, sim.seen_after,
                  before.total_to_gate() / window, after.total_to_gate() / after_window,
                  (cpu1 - cpu0) / window, (cpu2 - cpu1) / after_window,
                  before.room_from_cache / window, before.errors + after.errors)


def model(visitors: int = 100_000, nojs_share: float = 0.02,
          status_interval_s: float = 120.0) -> str:
    """Requests per second of `visitors` waiting far back (status every 120 s), before and
    after: room checks every 6 s on average (to the cache; one per second reaches a gate per
    cache), no-JS pages every 8 s instead of 120 s."""
    status = visitors * (1 - nojs_share) / status_interval_s
    nojs_before = visitors * nojs_share / status_interval_s
    nojs_after = visitors * nojs_share / NOSCRIPT_REFRESH_S
    room_checks = visitors * (1 - nojs_share) / ROOM_CHECK_S
    before = status + nojs_before
    after_cached = status + nojs_after + 1 / CACHE_S
    after_direct = status + nojs_after + room_checks
    return "\n".join([
        f"model: {visitors:,} visitors far back, {nojs_share:.0%} without JavaScript",
        f"  before: {before:,.0f} req/s at the gates (status {status:,.0f}, no-JS pages "
        f"{nojs_before:,.0f}); a change reaches the last within ~{status_interval_s * 1.2:.0f} s",
        f"  after, nginx caching the room state: {after_cached:,.0f} req/s at the gates "
        f"(x{after_cached / before:.2f}); room checks answered by nginx: {room_checks:,.0f} "
        f"req/s; no-JS pages {nojs_after:,.0f} req/s",
        f"  after, no cache in front: {after_direct:,.0f} req/s at the gates "
        f"(x{after_direct / before:.1f})",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--warmup-s", type=float, default=40.0)
    parser.add_argument("--cap-s", type=float, default=200.0)
    parser.add_argument("--before", type=Path, help="queue_gate/ from before the change")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--model", action="store_true", help="print the 100,000 model only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(model())
    if args.model:
        return
    variants: list[tuple[str, Callable[[], Path | None]]] = [("after", lambda: None)]
    if args.before is not None:
        variants.insert(0, ("before", lambda: args.before))
    rows = []
    for round_ in range(args.rounds):
        for variant, source in variants:
            with private_redis() as redis_url, tempfile.TemporaryDirectory() as logdir:
                src = source()
                with (stack(Path(logdir), redis_url, gate_src=src) if src is not None
                      else stack(Path(logdir), redis_url)) as running:
                    # Rate 0: nobody is admitted, everybody polls as far back in line.
                    gate = running.gate("gate", ROOM, rate_per_minute=0, backend_url=NO_BACKEND,
                                        extra_env={"QUEUE_GATE_JOIN_LIMIT": "0"})
                    result = asyncio.run(run_variant(gate, variant, args.visitors,
                                                     args.warmup_s, args.cap_s, seed=round_))
            rows.append(result.row())
            log.info("%s", result.row())
    print("| variant | visitors | median s | p99 s | last s | gate req/s before change | "
          "gate req/s after change | gate CPU s/s | answered by the cache, req/s | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
