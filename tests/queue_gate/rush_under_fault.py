"""A rush of visitors at real gate processes while something fails, and what it cost them.

Each visitor joins at one of the gates (the other if it answers "busy"), polls its status
there as often as the gate says but at least every `poll_cap_s`, and once admitted uses its
pass through the gate at once, and through the other gate at the end (after the fault).
Every answer is recorded; `Counts` says what went wrong, each of which must be 0:

- duplicate places: two tickets with the same room epoch and number;
- places lost or moved back: a visitor never admitted, or told a position behind one it was
  told before (more than the frontier's own jitter allows: none);
- double admissions: two visitors admitted on the same place;
- admitted visitors cut off: a pass refused after it was issued;
- tickets refused: a ticket answered 401 (stale, invalid) at any time;
- bad 5xx: any 5xx other than 503 with Retry-After.

And two durations: from the fault to its end (`failover_s`, a new master named), and to the
first admission after it (`resumed_after_s`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from vaccine_queue.contract import PASS_HEADER, TicketCodec

log = logging.getLogger(__name__)

# How long the gate may take to answer. Not a total: under load, a request may wait for one
# of the generator's own connections (thousands of visitors share a few hundred) far longer
# than the gate takes, and that wait is no failure of the gate's.
ANSWER_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=15)
# How long a rush may take. A run ends as soon as every visitor is through (about 15 s on an
# idle machine); the bound only ends a run whose visitors are stuck, and a loaded CI machine
# (a FLUSHALL answered after 9 s once) must not count slow visitors as lost.
RUSH_DEADLINE_S = 90.0


@dataclass
class Visitor:
    index: int
    ticket: str = ""
    epoch: str = ""
    number: int = 0
    joined_at: float = 0.0
    positions: list[int] = field(default_factory=list)
    admitted_at: float | None = None
    pass_token: str = ""
    refused: str = ""  # the code of a 401 on the ticket
    cut_off: str = ""  # the code of a refused pass
    busy: int = 0  # 503 with Retry-After seen


@dataclass(frozen=True)
class Counts:
    visitors: int
    joined: int
    admitted: int
    duplicate_places: int
    places_lost: int
    moved_back: int
    double_admissions: int
    cut_off: int
    tickets_refused: int
    bad_5xx: int
    busy_answers: int
    failover_s: float | None
    resumed_after_s: float | None

    def failures(self) -> dict[str, int]:
        """Every count that must be 0 and is not."""
        names = ("duplicate_places", "places_lost", "moved_back", "double_admissions",
                 "cut_off", "tickets_refused", "bad_5xx")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


class Rush:
    def __init__(self, gates: list[str], secret: str, *, visitors: int, arrival_s: float,
                 poll_cap_s: float = 2.0, seed: int = 12) -> None:
        self.gates = gates
        self.codec = TicketCodec((secret,), max_age_s=86400)
        self.visitors = [Visitor(i) for i in range(visitors)]
        self.arrival_s = arrival_s
        self.poll_cap_s = poll_cap_s
        self.rng = random.Random(seed)
        self.bad_5xx: list[str] = []
        self.started = 0.0
        self.fault_at: float | None = None
        # When the fault was over (the new master named): admissions can resume from then.
        self.recovered_at: float | None = None
        self.done = asyncio.Event()

    def gate(self, visitor: Visitor, step: int) -> str:
        return self.gates[(visitor.index + step) % len(self.gates)]

    def note(self, visitor: Visitor, response: aiohttp.ClientResponse, what: str) -> bool:
        """True for a 503 with Retry-After (try again); counts any other 5xx."""
        if response.status == 503 and response.headers.get("Retry-After"):
            visitor.busy += 1
            return True
        if response.status >= 500:
            self.bad_5xx.append(f"{what} {response.status}")
            return True
        return False

    async def run(self, session: aiohttp.ClientSession, *, until_s: float) -> None:
        self.started = time.monotonic()
        deadline = self.started + until_s
        tasks = [asyncio.create_task(self.visit(session, v, deadline)) for v in self.visitors]
        await asyncio.gather(*tasks)

    async def visit(self, session: aiohttp.ClientSession, visitor: Visitor,
                    deadline: float) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.arrival_s))
        step = -1
        while not visitor.ticket and time.monotonic() < deadline:
            step += 1
            try:
                async with session.post(self.gate(visitor, step) + "/queue/api/join") as r:
                    if self.note(visitor, r, "join"):
                        await asyncio.sleep(self.rng.uniform(0.3, 1.0))
                        continue
                    body = await r.json()
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.bad_5xx.append(f"join {exc.__class__.__name__}")
                await asyncio.sleep(0.5)
                continue
            visitor.ticket = body["ticket"]
            ticket = self.codec.load(visitor.ticket)
            visitor.epoch, visitor.number = ticket.epoch, ticket.number
            visitor.joined_at = time.monotonic()
            if body["state"] == "admitted":
                visitor.admitted_at, visitor.pass_token = time.monotonic(), body["pass"]
            elif body["position"] is not None:
                visitor.positions.append(body["position"])
        auth = {"Authorization": f"Bearer {visitor.ticket}"}
        while visitor.ticket and not visitor.pass_token and time.monotonic() < deadline:
            try:
                # Sticky, as behind a load balancer: one gate's snapshot never goes back.
                async with session.get(self.gate(visitor, step) + "/queue/api/status",
                                       headers=auth) as r:
                    if self.note(visitor, r, "status"):
                        await asyncio.sleep(self.rng.uniform(0.3, 1.0))
                        continue
                    body = await r.json()
                    if r.status == 401:
                        visitor.refused = body.get("error", "401")
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.bad_5xx.append(f"status {exc.__class__.__name__}")
                await asyncio.sleep(0.5)
                continue
            if body["state"] == "admitted":
                visitor.admitted_at, visitor.pass_token = time.monotonic(), body["pass"]
                break
            visitor.positions.append(body["position"])
            wait = min(float(body["poll_after_s"]), self.poll_cap_s)
            await asyncio.sleep(wait * self.rng.uniform(0.8, 1.2))
        if visitor.pass_token:
            await self.use_pass(session, visitor, step)
            await self.done.wait()  # once the fault is over: is the pass still good?
            await self.use_pass(session, visitor, step + 1)

    async def use_pass(self, session: aiohttp.ClientSession, visitor: Visitor,
                       step: int) -> None:
        for _ in range(20):
            try:
                async with session.get(self.gate(visitor, step) + "/book", headers={
                        PASS_HEADER: visitor.pass_token, "Accept": "application/json"}) as r:
                    if self.note(visitor, r, "proxy"):
                        await asyncio.sleep(0.5)
                        continue
                    if r.status != 200:
                        visitor.cut_off = (await r.json()).get("error", str(r.status))
                    return
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.bad_5xx.append(f"proxy {exc.__class__.__name__}")
                return

    def counts(self) -> Counts:
        joined = [v for v in self.visitors if v.ticket]
        places = Counter((v.epoch, v.number) for v in joined)
        admitted = [v for v in joined if v.pass_token]
        admitted_places = Counter((v.epoch, v.number) for v in admitted)
        moved_back = sum(1 for v in joined
                         if any(b > a for a, b in itertools.pairwise(v.positions)))
        resumed = failover = None
        if self.fault_at is not None and self.recovered_at is not None:
            # Seconds from the fault to the first admission once it was over (answers that
            # were on their way when it struck do not count).
            failover = round(self.recovered_at - self.fault_at, 2)
            after = [v.admitted_at for v in admitted
                     if v.admitted_at is not None and v.admitted_at >= self.recovered_at]
            resumed = round(min(after) - self.fault_at, 2) if after else None
        return Counts(
            visitors=len(self.visitors),
            joined=len(joined),
            admitted=len(admitted),
            duplicate_places=sum(n - 1 for n in places.values() if n > 1),
            places_lost=len(self.visitors) - len(admitted),
            moved_back=moved_back,
            double_admissions=sum(n - 1 for n in admitted_places.values() if n > 1),
            cut_off=sum(1 for v in admitted if v.cut_off),
            tickets_refused=sum(1 for v in joined if v.refused),
            bad_5xx=len(self.bad_5xx),
            busy_answers=sum(v.busy for v in self.visitors),
            failover_s=failover,
            resumed_after_s=resumed,
        )
