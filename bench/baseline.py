"""Bare aiohttp servers that set the ceiling the gate is measured against.

`json`: one GET handler answering a small JSON body, nothing else (no middleware, no
routing beyond one path). `redis`: the same handler after one Redis round trip (an INCR on
a throwaway key, with the same client and pool settings as the gate's store). Both run as
their own OS process, like the gate: `python -m bench.baseline --kind json --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

redis_client_key = web.AppKey("redis_client", aioredis.Redis)
BASELINE_KEY = "bench:baseline:counter"


async def bare_json(request: web.Request) -> web.Response:
    return web.json_response({"state": "waiting", "position": 1, "poll_after_s": 2.0},
                             headers={"Cache-Control": "no-store"})


async def one_round_trip(request: web.Request) -> web.Response:
    number = await request.app[redis_client_key].incr(BASELINE_KEY)
    return web.json_response({"state": "waiting", "position": int(number), "poll_after_s": 2.0},
                             headers={"Cache-Control": "no-store"})


def create_app(kind: str, redis_url: str) -> web.Application:
    app = web.Application()
    if kind == "json":
        app.router.add_route("*", "/{tail:.*}", bare_json)
        return app

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        # Same pool shape as queue_gate.store.connect, so the comparison is like for like.
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url, max_connections=64, timeout=5, socket_timeout=5,
            socket_connect_timeout=3, decode_responses=True)
        client = aioredis.Redis.from_pool(pool)
        app[redis_client_key] = client
        yield
        await client.aclose()

    app.cleanup_ctx.append(redis_ctx)
    app.router.add_route("*", "/{tail:.*}", one_round_trip)
    return app


async def serve(kind: str, port: int, redis_url: str) -> None:
    runner = web.AppRunner(create_app(kind, redis_url), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        logging.getLogger(__name__).info("baseline %s on 127.0.0.1:%d", kind, port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("json", "redis"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--uvloop", action="store_true",
                        help="run on uvloop (to compare with a gate that does)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.uvloop:
            import uvloop  # type: ignore[import-not-found,unused-ignore]  # optional

            uvloop.run(serve(args.kind, args.port, args.redis_url))
        else:
            asyncio.run(serve(args.kind, args.port, args.redis_url))


if __name__ == "__main__":
    main()
