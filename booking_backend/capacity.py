"""The capacity hint this backend sends the gate on every response (`CAPACITY_HEADER`).

The hint is a number from 0 to 1: the share of the database pool free right now, times a
latency factor that falls below 1 once recent requests take longer than `LATENCY_BUDGET_S`
(a pool with free connections but slow answers is busy elsewhere: PostgreSQL, locks). A
gate in adaptive mode admits fewer visitors while it is low. `CAPACITY_PATH` answers with
the hint alone (204), without a pass and without touching the database: the gate's probe.
"""

from __future__ import annotations

import time

from aiohttp import web

from booking_backend import keys
from vaccine_queue.contract import CAPACITY_HEADER, CAPACITY_PATH
from vaccine_queue.pages import Handler

# Recent requests slower than this on average make the hint fall (seconds).
LATENCY_BUDGET_S = 0.5
# Weight of the newest request in the running average of latency.
SMOOTHING = 0.05


class Capacity:
    """The running average of request latency, and the hint made from it and the pool."""

    def __init__(self) -> None:
        self.latency_s = 0.0

    def observe(self, seconds: float) -> None:
        self.latency_s += SMOOTHING * (seconds - self.latency_s)

    def hint(self, free_share: float) -> float:
        factor = 1.0 if self.latency_s <= LATENCY_BUDGET_S else LATENCY_BUDGET_S / self.latency_s
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
