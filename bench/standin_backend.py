"""STAND-IN booking backend for the benchmark (not the real `booking_backend`).

Used because `booking_backend.main.create_app` does not exist yet (or fails to start). It
behaves like a small booking system with a hard capacity: each request takes a fixed
service time (asyncio.sleep, standing in for database work), at most `--capacity` requests
are served at once, and any request beyond that is answered at once with 503, as an
overloaded upstream behind a load balancer would. It counts what the benchmark needs:
requests, 503s and the peak number of requests in flight (`GET /__bench/stats`).

A booking is two requests: `GET /api/slots` then `POST /api/bookings`; the second answers
with `X-Queue-End-Session: 1` so the gate ends the visitor's pass at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

SLOTS_SERVICE_S = 0.03
BOOKING_SERVICE_S = 0.06


@dataclass
class BackendStats:
    requests: int = 0
    served: int = 0
    rejected_503: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    bookings: int = 0


stats_key = web.AppKey("stats", BackendStats)
capacity_key = web.AppKey("capacity", int)


@web.middleware
async def capacity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/__bench/"):
        return await handler(request)
    stats = request.app[stats_key]
    stats.requests += 1
    if stats.in_flight >= request.app[capacity_key]:
        stats.rejected_503 += 1
        return web.json_response({"error": "overloaded"}, status=503)
    stats.in_flight += 1
    stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
    try:
        response = await handler(request)
    finally:
        stats.in_flight -= 1
    stats.served += 1
    return response


async def slots(request: web.Request) -> web.Response:
    await asyncio.sleep(SLOTS_SERVICE_S)
    return web.json_response({"slots": [{"id": "s1", "centre": "hannover"}]})


async def book(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(BOOKING_SERVICE_S)
    request.app[stats_key].bookings += 1
    return web.json_response({"booking": "ok"}, status=201,
                             headers={"X-Queue-End-Session": "1"})


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[stats_key]))


async def reset_stats(request: web.Request) -> web.Response:
    request.app[stats_key] = BackendStats()
    return web.json_response({"ok": True})


def create_app(capacity: int) -> web.Application:
    app = web.Application(middlewares=[capacity_middleware])
    app[stats_key] = BackendStats()
    app[capacity_key] = capacity
    app.router.add_get("/api/slots", slots)
    app.router.add_post("/api/bookings", book)
    app.router.add_get("/__bench/stats", get_stats)
    app.router.add_post("/__bench/reset", reset_stats)
    return app


async def serve(port: int, capacity: int) -> None:
    runner = web.AppRunner(create_app(capacity), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        logging.getLogger(__name__).info("stand-in backend on 127.0.0.1:%d, capacity %d",
                                         port, capacity)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=32)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.capacity))


if __name__ == "__main__":
    main()
