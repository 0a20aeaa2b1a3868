"""The start-up check of the room's Redis: one that keeps nothing through a restart (no
append-only file, no RDB snapshots, no replica) is reported loudly in the log and as
`queuegate_redis_durable` 0, and QUEUE_GATE_REQUIRE_DURABLE_REDIS refuses it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from devtools.servers import private_redis
from queue_gate.durability import NodeDurability, RedisNotDurable
from queue_gate.main import create_app
from tests.queue_gate.conftest import GateFactory, gate_settings


@pytest.fixture(scope="module")
def aof_redis_url() -> Iterator[str]:
    with private_redis(appendonly=True) as url:
        yield url


def durable_gauge(registry: CollectorRegistry, room: str = "default") -> float | None:
    return registry.get_sample_value("queuegate_redis_durable", {"room": room})


async def test_a_redis_that_keeps_nothing_is_reported_loudly(
    make_gate: GateFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="queue_gate.durability"):
        gate = await make_gate()  # the tests' own Redis: no persistence, no replica
    assert durable_gauge(gate.registry) == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "REDIS IS NOT DURABLE" in errors[0], errors
    assert "appendonly off, RDB snapshots off, 0 replica(s)" in errors[0]


async def test_an_append_only_redis_is_durable(make_gate: GateFactory, aof_redis_url: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="queue_gate.durability"):
        gate = await make_gate(redis_url=aof_redis_url, require_durable_redis=True)
    assert durable_gauge(gate.registry) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    response = await gate.client.post("/queue/api/join")
    assert response.status == 201


@pytest.mark.parametrize("redis", ["no persistence", "unreachable"])
async def test_required_durability_refuses_to_start(redis_url: str, redis: str) -> None:
    url = redis_url if redis == "no persistence" else "redis://127.0.0.1:9/0"
    settings = gate_settings(url, "http://127.0.0.1:9", require_durable_redis=True)
    registry = CollectorRegistry()
    runner = web.AppRunner(create_app(settings, registry=registry, run_ticker=False))
    try:
        with pytest.raises(RedisNotDurable, match="QUEUE_GATE_REQUIRE_DURABLE_REDIS"):
            await runner.setup()
    finally:
        await runner.cleanup()
    # Refused before the room was touched.
    assert registry.get_sample_value("queuegate_room_tickets", {"room": "default"}) is None


@pytest.mark.parametrize(("node", "durable"), [
    (NodeDurability("n", aof=True, rdb=False, replicas=0), True),
    (NodeDurability("n", aof=False, rdb=True, replicas=0), True),
    (NodeDurability("n", aof=False, rdb=None, replicas=1), True),
    (NodeDurability("n", aof=False, rdb=None, replicas=0), False),
    (NodeDurability("n", aof=False, rdb=False, replicas=0), False),
])
def test_what_counts_as_durable(node: NodeDurability, durable: bool) -> None:
    assert node.durable is durable
