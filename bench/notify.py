"""What turn messages cost Redis: memory per visitor who asked for one, and the time of the
sender's round with many of them waiting.

    .venv/bin/python -m bench.notify            # 20,000 opted-in visitors
    .venv/bin/python -m bench.notify --quick    # 2,000, a smoke run

Starts a private Redis and calls the gate's scripts directly (no HTTP): N visitors opt in
(far from the front), then it times a round that finds nobody near (what every process does
every 2 s), a round that also reads the kept places within the frontier's reach (once per
presence bucket: 10,000 numbers at 1,000 a minute and 300 s of grace), the same over every
kept place, the tick that marks all of them present, and a round that claims 200 at once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from devtools.servers import private_redis
from queue_gate.notify import NotifyStore
from queue_gate.settings import Settings
from queue_gate.store import RoomStore
from vaccine_queue.contract import Ticket

ROOM = "bench-notify"
ADMIN_TOKEN = "bench-notify-admin"


async def timed(call: Callable[[], Awaitable[object]], times: int) -> float:
    """Median milliseconds of `times` calls."""
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def run(redis_url: str, visitors: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    settings = Settings(redis_url=redis_url, secrets=("bench",), admin_token=ADMIN_TOKEN,
                        room=ROOM)
    room = RoomStore(client, settings)
    store = NotifyStore(client, settings)
    try:
        await room.tick()
        before = int((await client.info("memory"))["used_memory"])
        started = time.perf_counter()
        for start in range(0, visitors, 50):
            await asyncio.gather(*(
                store.opt_in(Ticket(ROOM, "e", 1000 + n, f"ticket-{n:08d}", 0), "sms",
                             f"+49151{n:08d}", "de", "https://impfen.example")
                for n in range(start, min(start + 50, visitors))))
        opt_in_s = time.perf_counter() - started
        after = int((await client.info("memory"))["used_memory"])
        everyone = (0, 1000 + visitors)
        kept = await store.claim(0, kept=everyone)
        assert len(kept.kept) == visitors
        # What a process reads at 1,000 a minute and a grace period of 300 s: 10,000 places.
        reach = (1000, 1000 + 10_000)
        return {
            "visitors": visitors,
            "opt_in_per_s": visitors / opt_in_s,
            "bytes_per_visitor": (after - before) / visitors,
            "round_nobody_near_ms": await timed(lambda: store.claim(0), 50),
            "round_with_kept_in_reach_ms": await timed(lambda: store.claim(0, kept=reach), 5),
            "round_with_all_kept_ms": await timed(lambda: store.claim(0, kept=everyone), 5),
            "tick_marking_all_kept_ms": await timed(lambda: room.tick(kept.kept), 5),
            "round_claiming_200_ms": await timed(
                lambda: store.claim(1000 + visitors), 5),
        }
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.notify", description=__doc__)
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    visitors = 2_000 if args.quick else args.visitors
    with private_redis() as url:
        result = asyncio.run(run(url, visitors))
    for name, value in result.items():
        print(f"{name:28} {value:,.1f}")


if __name__ == "__main__":
    main()
