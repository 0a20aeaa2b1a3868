"""A Redis that comes back empty (a replica promoted without the room, a cache-configured
instance, an operator's FLUSHALL) keeps the line: the gate re-creates the room from its
last snapshot. Admitted visitors keep their sessions, waiting visitors their places (ahead
of newcomers, in order, told their true position), fresh tickets are honoured, the
operators' rate, mode and message stay, and healthz and the metrics say it happened.
The loss is a FLUSHALL of the tests' own private Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from bench.procs import SECRET, stack
from devtools.servers import private_redis
from queue_gate.keys import room_view_key
from queue_gate.store import RESEED_MARGIN
from tests.queue_gate.conftest import FakeClock, GateFactory, join, status
from tests.queue_gate.rush_under_fault import ANSWER_TIMEOUT, RUSH_DEADLINE_S, Rush
from vaccine_queue.contract import PASS_HEADER

log = logging.getLogger(__name__)


async def test_a_room_that_comes_back_empty_keeps_its_line(
    make_gate: GateFactory, clock: FakeClock, redis_client: aioredis.Redis
) -> None:
    gates = [await make_gate(initial_rate_per_minute=60) for _ in range(2)]
    for gate in gates:
        await gate.tick()
    # The operators' settings, not the environment's.
    await gates[0].app[room_view_key].store.update_config(
        {"rate_per_minute": 30, "message": "Thanks for waiting"})
    tickets = [(await join(gates[i % 2]))["ticket"] for i in range(10)]
    clock.advance(4)  # 30 a minute: two admitted
    for gate in gates:
        await gate.tick()
    admitted: list[str] = []
    for ticket in tickets[:2]:
        code, body = await status(gates[0], ticket)
        assert (code, body["state"]) == (200, "admitted"), body
        admitted.append(str(body["pass"]))
    before = {t: (await status(gates[1], t))[1]["position"] for t in tickets[2:]}
    assert list(before.values()) == list(range(1, 9))  # in the order they joined

    await redis_client.flushall()  # Redis comes back empty
    fresh = (await join(gates[1]))["ticket"]  # a join finds the room missing first
    for gate in gates:
        await gate.tick()

    # Admitted visitors keep their sessions, through either gate.
    for token, gate in zip(admitted, gates, strict=True):
        response = await gate.client.get("/book", headers={PASS_HEADER: token,
                                                           "Accept": "application/json"})
        assert response.status == 200, await response.text()
    # Waiting visitors keep their places and are told them; the newcomer is behind them.
    for ticket, position in before.items():
        code, body = await status(gates[0], ticket)
        assert (code, body["state"], body["position"]) == (200, "waiting", position), body
        assert body["message"] == "Thanks for waiting"
    code, body = await status(gates[0], fresh)
    assert code == 200 and body["position"] == 8 + RESEED_MARGIN + 1, body
    # The line moves on in its old order at the operators' rate.
    clock.advance(2)
    for gate in gates:
        await gate.tick()
    code, body = await status(gates[0], tickets[2])
    assert body["state"] == "admitted", body
    code, body = await status(gates[0], tickets[3])
    assert body["state"] == "waiting", body
    # Health and metrics tell the operators.
    health = await (await gates[0].client.get("/queue/healthz")).json()
    assert health["ok"] and health["room_lost_at"]
    assert gates[1].registry.get_sample_value(
        "queuegate_room_reseeded_at_timestamp_seconds", {"room": "default"}) is not None


async def test_redis_flushed_mid_rush_loses_nobody(
    tmp_path: Path, backend: TestServer
) -> None:
    """Real processes: two gate processes on a private Redis, 2,000 visitors joining over
    4 s, FLUSHALL at 2 s (the Redis comes back empty at once)."""
    with private_redis() as url, stack(tmp_path / "logs", url) as running:
        gates = [running.gate(f"gate-{i}", "flushed", rate_per_minute=12_000,
                              backend_url=str(backend.make_url("/")),
                              extra_env={"QUEUE_GATE_JOIN_LIMIT": "0",
                                         "QUEUE_GATE_DRAW_LIMIT": "0"}) for i in range(2)]
        rush = Rush([gate.url for gate in gates], SECRET, visitors=2000, arrival_s=4.0)
        client = aioredis.Redis.from_url(url)

        async def fault() -> None:
            await asyncio.sleep(2.0)
            rush.fault_at = time.monotonic()
            await client.flushall()  # our own private Redis
            rush.recovered_at = time.monotonic()
            await asyncio.sleep(1.0)
            rush.done.set()

        try:
            async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=256),
                    timeout=ANSWER_TIMEOUT) as session:
                faulting = asyncio.create_task(fault())
                await rush.run(session, until_s=RUSH_DEADLINE_S)
                await faulting
        finally:
            await client.aclose()
    counts = rush.counts()
    log.info("Redis flushed mid-rush: %s; 5xx: %s", counts, rush.bad_5xx[:10])
    assert counts.joined == 2000
    assert counts.failures() == {}, (counts, rush.bad_5xx[:10])
