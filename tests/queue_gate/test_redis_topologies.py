"""The gate on the three ways to reach Redis, with real servers: a three-master Redis
Cluster with a replica each (rooms on different shards), and a master with a replica and
three Sentinels. Every room joins, ticks, admits, issues passes and proxies; the admin API
lists and changes rooms wherever their slot lives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from devtools.servers import LocalCluster, LocalSentinel, private_redis_cluster, private_sentinel
from queue_gate.admin import create_admin_app
from queue_gate.keys import store_key
from queue_gate.store import RoomKeys
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth, join
from vaccine_queue.contract import PASS_HEADER

Client = TestClient[web.Request, web.Application]
AdminFactory = Callable[[Gate], Awaitable[Client]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with private_redis_cluster(masters=3, replicas=1) as started:
        yield started


@pytest.fixture(scope="module")
def sentinel() -> Iterator[LocalSentinel]:
    with private_sentinel() as started:
        yield started


@pytest.fixture
async def make_admin(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> AdminFactory:
    async def factory(gate: Gate) -> Client:
        return await aiohttp_client(create_admin_app(gate.app))

    return factory


@pytest.fixture
async def cluster_client(cluster: LocalCluster) -> AsyncIterator[aioredis.RedisCluster]:
    """The test's own cluster client; every master flushed first (the cluster is ours)."""
    client = aioredis.RedisCluster.from_url(cluster.url, decode_responses=True)
    await client.flushall(target_nodes=aioredis.RedisCluster.PRIMARIES)
    yield client
    await client.aclose()


def rooms_on_every_shard(cluster: LocalCluster, per_shard: int = 1) -> list[str]:
    """Room names whose slot `{room}` lies on each master in turn."""
    with redis.RedisCluster.from_url(cluster.url) as client:
        masters = {node.name for node in client.get_primaries()}
        found: dict[str, list[str]] = {name: [] for name in masters}
        index = 0
        while any(len(rooms) < per_shard for rooms in found.values()):
            room = f"room-{index}"
            node = client.get_node_from_key(RoomKeys(room).state).name
            if len(found[node]) < per_shard:
                found[node].append(room)
            index += 1
    return [room for rooms in found.values() for room in rooms]


async def admit_and_proxy(gate: Gate, clock: FakeClock) -> str:
    """Join through the API, tick the turn round, collect the pass and use it."""
    ticket = (await join(gate))["ticket"]
    clock.advance(1)
    await gate.tick()
    response = await gate.client.get("/queue/api/status",
                                     headers={"Authorization": f"Bearer {ticket}"})
    body = await response.json()
    assert body["state"] == "admitted", body
    token: str = body["pass"]
    response = await gate.client.get("/book", headers={PASS_HEADER: token,
                                                       "Accept": "application/json"})
    assert response.status == 200, await response.text()
    assert (await response.json())["path"] == "/book"
    return token


async def test_rooms_on_every_shard_of_a_cluster(
    cluster: LocalCluster, cluster_client: aioredis.RedisCluster, make_gate: GateFactory,
    make_admin: AdminFactory, clock: FakeClock,
) -> None:
    rooms = rooms_on_every_shard(cluster, per_shard=2)
    assert len(rooms) == 6
    gates = {room: await make_gate(redis_url=cluster.url, redis_cluster=True, room=room,
                                   initial_rate_per_minute=600) for room in rooms}
    for room, gate in gates.items():
        # Every master has a replica: the start-up check finds the cluster durable.
        assert gate.registry.get_sample_value("queuegate_redis_durable", {"room": room}) == 1
        await gate.tick()
        for _ in range(3):
            await admit_and_proxy(gate, clock)
        assert await cluster_client.hget(RoomKeys(room).state, "passes_issued") == "3"

    admin = await make_admin(gates[rooms[0]])
    response = await admin.get("/admin/rooms", headers=auth())
    assert response.status == 200
    assert (await response.json())["rooms"] == sorted(rooms)
    for room in rooms:
        response = await admin.get(f"/admin/rooms/{room}", headers=auth())
        assert response.status == 200, await response.text()
        document = await response.json()
        assert (document["tickets_issued"], document["passes_issued"]) == (3, 3)
        response = await admin.patch(f"/admin/rooms/{room}", headers=auth(),
                                     json={"rate_per_minute": 90, "mode": "paused"})
        assert response.status == 200, await response.text()
        assert await cluster_client.hmget(RoomKeys(room).config, ["rate_per_minute", "mode"]
                                          ) == ["90", "paused"]
    response = await admin.patch("/admin/rooms/nowhere", headers=auth(), json={"mode": "closed"})
    assert response.status == 404


async def test_a_busy_room_on_a_cluster_keeps_strict_order(
    cluster: LocalCluster, cluster_client: aioredis.RedisCluster, make_gate: GateFactory,
) -> None:
    """Joins sent together share script calls on the room's node: numbers 1..n, no gaps."""
    gate = await make_gate(redis_url=cluster.url, redis_cluster=True, room="crowd")
    await gate.tick()
    store = gate.app[store_key]
    results = await asyncio.gather(*(store.join(f"t-{i}") for i in range(300)))
    assert sorted(result.number for result in results) == list(range(1, 301))
    # Redis TIME from a node of the cluster (the admin API's clock without a test clock).
    assert abs(await store.redis_time() - time.time()) < 60


async def test_a_gate_through_sentinel(sentinel: LocalSentinel, make_gate: GateFactory,
                                       make_admin: AdminFactory, clock: FakeClock) -> None:
    master = aioredis.Redis.from_url(sentinel.master.url, decode_responses=True)
    try:
        await master.flushall()
        gate = await make_gate(redis_sentinels=sentinel.sentinels,
                               redis_master=sentinel.master_name, room="through-sentinel")
        assert gate.registry.get_sample_value("queuegate_redis_durable",
                                              {"room": "through-sentinel"}) == 1  # a replica
        await gate.tick()
        await admit_and_proxy(gate, clock)
        # The room lives on the master Sentinel named, and its replica has it too.
        assert await master.hget(RoomKeys("through-sentinel").state, "passes_issued") == "1"
        admin = await make_admin(gate)
        response = await admin.get("/admin/rooms", headers=auth())
        assert (await response.json())["rooms"] == ["through-sentinel"]
    finally:
        await master.aclose()


async def wait_calls(node: aioredis.Redis) -> int:
    stats = await node.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


async def test_on_a_cluster_places_and_passes_wait_for_the_room_nodes_replica(
    cluster: LocalCluster, cluster_client: aioredis.RedisCluster, make_gate: GateFactory,
    make_admin: AdminFactory, clock: FakeClock,
) -> None:
    """WAIT counts the writes of the connection it is sent on: joins, passes, ticks, ended
    sessions and operators' changes reach the master of the room's slot over one connection
    with their WAIT, so the master's replica confirms each before it is handed out."""
    room = rooms_on_every_shard(cluster)[1]
    address = cluster_client.get_node_from_key(RoomKeys(room).state)
    assert address is not None
    node = aioredis.Redis(host=address.host, port=int(address.port), decode_responses=True)
    try:
        gate = await make_gate(redis_url=cluster.url, redis_cluster=True, room=room)
        before = await wait_calls(node)
        await gate.tick()
        await admit_and_proxy(gate, clock)
        admin = await make_admin(gate)
        response = await admin.patch(f"/admin/rooms/{room}", headers=auth(),
                                     json={"rate_per_minute": 90})
        assert response.status == 200, await response.text()
        # At least: a tick, a join, the tick that admits, the pass, the change.
        assert await wait_calls(node) - before >= 5
        assert int((await node.info("replication"))["connected_slaves"]) == 1
    finally:
        await node.aclose()
