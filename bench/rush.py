"""The launch rush, replayed by an asyncio load generator (`bench.httpclient`).

One worker process plays its share of the visitors: each arrives at its scheduled moment,
joins, polls `/queue/api/status` exactly as the gate tells it (`poll_after_s`), may leave
while waiting, and once admitted books through the gate at the real booking backend
(offers, hold, details, the code from the SMS gateway stand-in, confirm; every call with
its pass). With `--direct` the same visitors skip the gate and book straight at the
backend with passes of their own, as on launch day 2021 without a queue. Each worker
writes one JSON file; `launch.py` merges them.

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

from itsdangerous.encoding import base64_decode

from bench.httpclient import Client, HTTPError
from bench.procs import SECRET, visitor_address
from vaccine_queue.contract import AdmissionPass, PassCodec

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
CATALOGUE = Path(__file__).resolve().parent.parent / "booking_backend/data/niedersachsen.json"
# Visitors live all over the state: every district's postcodes, in turn.
POSTCODES = [code for district in json.loads(CATALOGUE.read_text())["districts"]
             for code in district["postcodes"][:1]]


@dataclass(frozen=True)
class RushSpec:
    gates: list[str]  # one base URL per gate process; each visitor sticks to one
    backend: str
    sms: str  # the SMS gateway stand-in, where visitors read their codes
    visitors: int  # in total, over all workers
    arrival_s: float  # arrivals are spread uniformly at random over this long
    duration_s: float  # the whole replay stops this long after start_at
    start_at: float  # unix time, shared by all workers
    leave_share: float  # share of visitors who give up while waiting
    workers: int
    seed: int
    direct: bool = False
    room: str = "rush"
    # After the replay stops, requests already sent may finish for this long; then the
    # rest are cancelled (not counted as errors).
    grace_s: float = 15.0


@dataclass
class WorkerResult:
    worker: int
    joins: int = 0
    status_polls: int = 0
    admitted: int = 0
    left: int = 0
    bookings_ok: int = 0
    hold_conflicts: int = 0  # 409: the pair was taken by someone faster (not an error)
    still_waiting: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    # (seconds since start, latency ms) of every successful join / status poll
    join_lat: list[tuple[float, float]] = field(default_factory=list)
    status_lat: list[tuple[float, float]] = field(default_factory=list)
    book_lat: list[tuple[float, float]] = field(default_factory=list)  # whole bookings
    backend_lat: list[tuple[float, float]] = field(default_factory=list)  # each API call
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
        self.passes = PassCodec([SECRET])  # the direct run's passes
        self.client = Client()

    def error(self, kind: str) -> None:
        self.result.errors[kind] = self.result.errors.get(kind, 0) + 1

    def rel(self, t: float) -> float:
        return round(t - self.spec.start_at, 3)

    async def request(self, method: str, url: str, what: str, *,
                      headers: dict[str, str], json_body: Any = None,
                      ) -> tuple[int, Any, float, float] | None:
        """One request: (status, JSON body or None, sent at, latency s), None on failure."""
        sent = time.time()
        try:
            status, raw = await self.client.request(method, url, headers=headers,
                                                    json_body=json_body,
                                                    limit_s=REQUEST_TIMEOUT_S)
            latency = time.time() - sent
            body = json.loads(raw) if status < 500 and raw else None
        except TimeoutError:
            self.error(f"{what}_timeout")
            return None
        except (HTTPError, ValueError) as exc:
            self.error(f"{what}_{type(exc).__name__}")
            return None
        if status >= 500:
            self.error(f"{what}_{status}")
            return None
        return status, body, sent, latency

    async def sleep_until(self, moment: float) -> bool:
        """Sleep until `moment`; False if the replay ends first."""
        delay = min(moment, self.deadline) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return time.time() < self.deadline

    async def book(self, base: str, n: int,
                   headers: dict[str, str]) -> None:
        """A whole booking at the real backend's API, as the booking page makes it: offers
        near home, hold a pair (another one if someone was faster), name and phone, the
        code from the SMS, confirm. Every request goes through `base`: the gate with the
        visitor's pass, or the backend itself in the direct run."""
        res = self.result
        started = time.time()
        person = {"birth_date": f"19{30 + n % 15}-{1 + n % 12:02d}-{1 + n % 28:02d}",
                  "postcode": POSTCODES[n % len(POSTCODES)]}
        api = f"{base}/api/v1"

        async def call(step: str, method: str, path: str, body: dict[str, str],
                       ok: tuple[int, ...]) -> tuple[int, Any] | None:
            answer = await self.request(method, f"{api}{path}", "book", headers=headers,
                                        json_body=body)
            if answer is None:
                return None
            status, doc, sent, latency = answer
            res.backend_lat.append((self.rel(sent), round(latency * 1000, 2)))
            if status not in ok:
                reason = doc.get("error", "") if isinstance(doc, dict) else ""
                self.error(f"book_{step}_{status}" + (f"_{reason}" if reason else ""))
                return None
            return status, doc

        hold_id = None
        for _round in range(3):
            found = await call("offers", "POST", "/offers", person, (200,))
            if found is None:
                return
            offers = found[1]["offers"]
            for k in range(len(offers)):
                offer = offers[(n + k) % len(offers)]
                held = await call("hold", "POST", "/holds", {
                    **person, "first_slot": offer["first"]["slot"],
                    "second_slot": offer["second"]["slot"]}, (201, 409))
                if held is None:
                    return
                if held[0] == 201:
                    hold_id = held[1]["hold_id"]
                    break
                res.hold_conflicts += 1  # someone was faster: take the next pair
            if hold_id is not None:
                break
        if hold_id is None:
            self.error("book_no_pair_held")
            return
        contact = f"+4915{n:09d}"
        if await call("details", "POST", f"/holds/{hold_id}/details",
                      {"name": f"Bench Visitor {n}", "contact": contact}, (202,)) is None:
            return
        try:
            status, raw = await self.client.request(
                "GET", f"{self.spec.sms}/codes", params={"to": contact}, limit_s=30)
        except (TimeoutError, HTTPError):
            status = 0
        if status != 200:
            self.error("book_code_not_delivered")
            return
        code = json.loads(raw)["code"]
        if await call("confirm", "POST", f"/holds/{hold_id}/confirm", {"code": code},
                      (201,)) is None:
            return
        res.bookings_ok += 1
        res.book_lat.append((self.rel(started), round((time.time() - started) * 1000, 2)))

    async def visitor(self, n: int, arrive_at: float,
                      leave_after: float | None) -> None:
        if not await self.sleep_until(arrive_at):
            return
        if self.spec.direct:
            # No queue: as if every visitor had been let in at once.
            admission = AdmissionPass(self.spec.room, f"direct-{n}", int(time.time()) + 3600)
            await self.book(self.spec.backend, n,
                            {"X-Queue-Pass": self.passes.sign(admission),
                             "X-Forwarded-For": visitor_address(n)})
            return
        gate_index = n % len(self.spec.gates)
        gate = self.spec.gates[gate_index]
        # The visitor's own address and browser, as the gate sees them behind its proxy.
        me = {"X-Forwarded-For": visitor_address(n), "User-Agent": f"bench-visitor/{n % 7}"}
        joined = await self.request("POST", f"{gate}/queue/api/join", "join",
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
            polled = await self.request("GET", f"{gate}/queue/api/status", "status",
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
        await self.book(gate, n, {"X-Queue-Pass": body["pass"], **me})

    async def run(self) -> WorkerResult:
        spec = self.spec
        rng = random.Random(spec.seed)
        # Every worker draws the same schedule and plays every workers-th visitor of it.
        schedule = sorted(rng.uniform(0, spec.arrival_s) for _ in range(spec.visitors))
        leaves = [rng.uniform(10, 90) if rng.random() < spec.leave_share else None
                  for _ in range(spec.visitors)]
        started_cpu = time.process_time()
        started = time.monotonic()
        tasks = [
            asyncio.create_task(self.visitor(n, spec.start_at + schedule[n], leaves[n]))
            for n in range(self.index, spec.visitors, spec.workers)
        ]
        await asyncio.wait(tasks, timeout=spec.start_at + spec.duration_s + spec.grace_s
                           - time.time())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.client.close()
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
