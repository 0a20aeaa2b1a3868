"""The capacity hint this backend sends the gate on every response (`CAPACITY_HEADER`).

The hint is a number from 0 to 1: the share of the database pool free right now, times a
latency factor that falls below 1 once recent requests take longer than `LATENCY_BUDGET_S`
(a pool with free connections but slow answers is busy elsewhere: PostgreSQL, locks). A
gate in adaptive mode admits fewer visitors while it is low. `CAPACITY_PATH` answers with
the hint alone (204), without a pass and without touching the database: the gate's probe.

The average forgets with time as well as with requests (it halves every IDLE_HALF_LIFE_S
without one): a backend that answered a burst of late requests (those held while it hung)
and then had none kept its average, so its probe said "busy" for as long as no visitor
came, and an adaptive gate held its rate at rate_min with nobody to show it wrong
(bench.adaptive, hang case: 70 s at rate_min after recovery).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from aiohttp import web

from booking_backend import keys
from vaccine_queue.contract import CAPACITY_HEADER, CAPACITY_PATH
from vaccine_queue.pages import Handler

# Recent requests slower than this on average make the hint fall (seconds).
LATENCY_BUDGET_S = 0.5
# Weight of the newest request in the running average of latency.
SMOOTHING = 0.05
# Without requests the average halves every this many seconds.
IDLE_HALF_LIFE_S = 2.0


class Capacity:
    """The running average of request latency, and the hint made from it and the pool."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._latency_s = 0.0
        self._clock = clock
        self._observed_at = clock()

    @property
    def latency_s(self) -> float:
        """The running average, decayed for the time since the last request."""
        idle = max(self._clock() - self._observed_at, 0.0)
        return self._latency_s * math.exp(-math.log(2) * idle / IDLE_HALF_LIFE_S)

    def observe(self, seconds: float) -> None:
        latency = self.latency_s
        self._latency_s = latency + SMOOTHING * (seconds - latency)
        self._observed_at = self._clock()

    def hint(self, free_share: float) -> float:
        latency = self.latency_s
        factor = 1.0 if latency <= LATENCY_BUDGET_S else LATENCY_BUDGET_S / latency
        return round(max(0.0, min(free_share * factor, 1.0)), 2)


@web.middleware
async def capacity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: time every request, and put the hint on every response."""
    capacity = request.app[keys.capacity_key]
    db = request.app[keys.db_key]
    if request.path == CAPACITY_PATH:
        return web.Response(status=204, headers={
            CAPACITY_HEADER: str(capacity.hint(db.free_share())), "Cache-Control": "no-store"})
    started = time.perf_counter()
    try:
        response = await handler(request)
    finally:
        capacity.observe(time.perf_counter() - started)
    if not response.prepared:
        response.headers[CAPACITY_HEADER] = str(capacity.hint(db.free_share()))
    return response
