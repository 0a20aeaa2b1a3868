"""The launch rush, replayed by an asyncio (aiohttp client) load generator.

One worker process plays its share of the visitors: each arrives at its scheduled moment,
joins, polls `/queue/api/status` exactly as the gate tells it (`poll_after_s`), may leave
while waiting, and once admitted books through the gate (two requests to the backend with
its pass). With `--direct` the same visitors skip the gate and book straight at the
backend, as on launch day 2021. Each worker writes one JSON file; `launch.py` merges them.

Run by `launch.py`: `python -m bench.rush --spec spec.json --worker 0 --out w0.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import resource
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from itsdangerous.encoding import base64_decode

from bench.procs import visitor_address

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RushSpec:
    gates: list[str]  # one base URL per gate process; each visitor sticks to one
    backend: str
    visitors: int  # in total, over all workers
    arrival_s: float  # arrivals are spread uniformly at random over this long
    duration_s: float  # the whole replay stops this long after start_at
    start_at: float  # unix time, shared by all workers
    leave_share: float  # share of visitors who give up while waiting
    workers: int
    seed: int
    direct: bool = False
    connections_per_worker: int = 2000


@dataclass
class WorkerResult:
    worker: int
    joins: int = 0
    status_polls: int = 0
    admitted: int = 0
    left: int = 0
    bookings_ok: int = 0
    still_waiting: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    # (seconds since start, latency ms) of every successful join / status poll
    join_lat: list[tuple[float, float]] = field(default_factory=list)
    status_lat: list[tuple[float, float]] = field(default_factory=list)
    book_lat: list[tuple[float, float]] = field(default_factory=list)
    # seconds since start of each arrival (join answered) and first admission seen
    arrivals: list[float] = field(default_factory=list)
    admissions: list[float] = field(default_factory=list)
    # per admitted-or-waiting visitor: [ticket number, gate, last "waiting" request sent,
    # first "admitted" answer received (-1 if never)]
    order: list[tuple[int, int, float, float]] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0


def ticket_number(token: str) -> int:
    """The place in line written in a ticket (itsdangerous payload: [room, epoch, n, ...])."""
    payload = token.rsplit(".", 2)[0]
    compressed = payload.startswith(".")
    raw = base64_decode(payload.lstrip("."))
    if compressed:
        raw = zlib.decompress(raw)
    number: int = json.loads(raw)[2]
    return number


class Worker:
    def __init__(self, spec: RushSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.result = WorkerResult(index)
        self.deadline = spec.start_at + spec.duration_s

    def error(self, kind: str) -> None:
        self.result.errors[kind] = self.result.errors.get(kind, 0) + 1

    def rel(self, t: float) -> float:
        return round(t - self.spec.start_at, 3)

    async def request(self, session: aiohttp.ClientSession, method: str, url: str,
                      what: str, **kwargs: Any) -> tuple[int, Any, float, float] | None:
        """One request: (status, JSON body or None, sent at, latency s), None on failure."""
        sent = time.time()
        try:
            async with session.request(method, url, **kwargs) as response:
                body = await response.json(content_type=None) if response.status < 500 else None
                latency = time.time() - sent
        except TimeoutError:
            self.error(f"{what}_timeout")
            return None
        except (aiohttp.ClientError, json.JSONDecodeError) as exc:
            self.error(f"{what}_{type(exc).__name__}")
            return None
        if response.status >= 500:
            self.error(f"{what}_{response.status}")
            return None
        return response.status, body, sent, latency

    async def sleep_until(self, moment: float) -> bool:
        """Sleep until `moment`; False if the replay ends first."""
        delay = min(moment, self.deadline) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return time.time() < self.deadline

    async def book(self, session: aiohttp.ClientSession, base: str,
                   headers: dict[str, str]) -> None:
        started = time.time()
        first = await self.request(session, "GET", f"{base}/api/slots", "book",
                                   headers=headers)
        if first is None or first[0] >= 400:
            if first is not None:
                self.error(f"book_{first[0]}")
            return
        second = await self.request(session, "POST", f"{base}/api/bookings", "book",
                                    headers=headers, json={"slot": "s1"})
        if second is None or second[0] >= 400:
            if second is not None:
                self.error(f"book_{second[0]}")
            return
        self.result.bookings_ok += 1
        self.result.book_lat.append((self.rel(started), round((time.time() - started) * 1000,
                                                              2)))

    async def visitor(self, session: aiohttp.ClientSession, n: int, arrive_at: float,
                      leave_after: float | None) -> None:
        if not await self.sleep_until(arrive_at):
            return
        if self.spec.direct:
            await self.book(session, self.spec.backend,
                            {"X-Forwarded-For": visitor_address(n)})
            return
        gate_index = n % len(self.spec.gates)
        gate = self.spec.gates[gate_index]
        # The visitor's own address and browser, as the gate sees them behind its proxy.
        me = {"X-Forwarded-For": visitor_address(n), "User-Agent": f"bench-visitor/{n % 7}"}
        joined = await self.request(session, "POST", f"{gate}/queue/api/join", "join",
                                    headers={"Accept": "application/json", **me})
        if joined is None:
            return
        status, body, sent, latency = joined
        if status != 201:
            self.error(f"join_{status}")
            return
        res = self.result
        res.joins += 1
        res.join_lat.append((self.rel(sent), round(latency * 1000, 2)))
        res.arrivals.append(self.rel(sent + latency))
        token = body["ticket"]
        number = ticket_number(token)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **me}
        last_waiting = -1.0
        give_up_at = None if leave_after is None else sent + leave_after
        while body["state"] != "admitted":
            next_poll = time.time() + float(body["poll_after_s"])
            if give_up_at is not None and next_poll > give_up_at:
                await self.sleep_until(give_up_at)
                res.left += 1
                return
            if not await self.sleep_until(next_poll):
                res.still_waiting += 1
                res.order.append((number, gate_index, last_waiting, -1.0))
                return
            polled = await self.request(session, "GET", f"{gate}/queue/api/status", "status",
                                        headers=headers)
            if polled is None:
                continue  # counted as an error; a person would simply try again
            status, body, sent, latency = polled
            if status != 200:
                self.error(f"status_{status}")
                return
            res.status_polls += 1
            res.status_lat.append((self.rel(sent), round(latency * 1000, 2)))
            if body["state"] != "admitted":
                last_waiting = self.rel(sent)
        admitted_at = self.rel(time.time())
        res.admitted += 1
        res.admissions.append(admitted_at)
        res.order.append((number, gate_index, last_waiting, admitted_at))
        await self.book(session, gate, {"X-Queue-Pass": body["pass"], **me})

    async def run(self) -> WorkerResult:
        spec = self.spec
        rng = random.Random(spec.seed)
        # Every worker draws the same schedule and plays every workers-th visitor of it.
        schedule = sorted(rng.uniform(0, spec.arrival_s) for _ in range(spec.visitors))
        leaves = [rng.uniform(10, 90) if rng.random() < spec.leave_share else None
                  for _ in range(spec.visitors)]
        connector = aiohttp.TCPConnector(limit=spec.connections_per_worker, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        started_cpu = time.process_time()
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         cookie_jar=aiohttp.DummyCookieJar()) as session:
            tasks = [
                asyncio.create_task(self.visitor(session, n, spec.start_at + schedule[n],
                                                 leaves[n]))
                for n in range(self.index, spec.visitors, spec.workers)
            ]
            await asyncio.wait(tasks, timeout=spec.start_at + spec.duration_s + 15 - time.time())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.result.cpu_s = time.process_time() - started_cpu
        self.result.wall_s = time.monotonic() - started
        return self.result


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = RushSpec(**json.loads(args.spec.read_text()))
    result = asyncio.run(Worker(spec, args.worker).run())
    args.out.write_text(json.dumps(asdict(result)))
    log.info("worker %d: %d joins, %d polls, %d admitted, errors %s, cpu %.1f s",
             args.worker, result.joins, result.status_polls, result.admitted, result.errors,
             result.cpu_s)


if __name__ == "__main__":
    main()
