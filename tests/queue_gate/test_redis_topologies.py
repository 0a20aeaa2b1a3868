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
from redis.asyncio.connection import Connection

from devtools.servers import LocalCluster, LocalSentinel, private_redis_cluster, private_sentinel
from queue_gate.admin import create_admin_app
from queue_gate.keys import store_key
from queue_gate.store import GateUnavailable, RoomKeys, _redis_trouble
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


# --- a master failing over (a cluster of the test's own: it loses a node) ---------------


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    with private_redis_cluster(masters=3, replicas=1) as started:
        yield started


def slot_master(cluster: LocalCluster, key: str) -> int:
    """The port of the master serving `key`'s slot."""
    with redis.Redis.from_url(cluster.url) as client:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for first, last, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if int(first) <= slot <= int(last):
                return int(master[1])
    raise AssertionError(f"no master for slot {slot}")


async def replica_in_sync(cluster: LocalCluster, port: int) -> None:
    """Until a replica of the master at `port` has its link up: a replica that never
    synced is too stale to be elected, and the slot would stay without a master."""
    for _ in range(600):
        for server in cluster.servers:
            with redis.Redis.from_url(server.url, decode_responses=True) as node:
                info = node.info("replication")
            if info.get("master_port") == port and info.get("master_link_status") == "up":
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no replica of {port} in sync")


async def test_every_join_is_answered_while_the_rooms_master_fails_over(
    own_cluster: LocalCluster, make_gate: GateFactory,
) -> None:
    """Visitors join one after another (their batches overlap on the room's node) while
    the master of the room's slot is killed and its replica takes over: each join gets a
    place or "busy, retry" (GateUnavailable), none is left without an answer, and places
    come back once the replica is master. (The bound on each join only keeps a lost answer
    from hanging the test.)"""
    gate = await make_gate(redis_url=own_cluster.url, redis_cluster=True, room="failing")
    await gate.tick()
    store = gate.app[store_key]
    port = slot_master(own_cluster, RoomKeys("failing").state)
    victim = next(s for s in own_cluster.servers if s.url.endswith(f":{port}/0"))
    await replica_in_sync(own_cluster, port)
    victim.process.kill()
    counts = {"busy": 0, "places_after": 0}

    async def visitor(index: int) -> None:
        for attempt in range(5000):
            if counts["places_after"] >= 100:
                return
            try:
                await asyncio.wait_for(store.join(f"v{index}-{attempt}"), timeout=30)
            except GateUnavailable:
                counts["busy"] += 1
            else:
                counts["places_after"] += 1 if counts["busy"] else 0
            await asyncio.sleep(0.002 * (index % 5))

    await asyncio.gather(*(visitor(index) for index in range(20)))
    assert counts["busy"] and counts["places_after"] >= 100


async def test_a_join_batch_that_fails_inside_redis_py_still_answers_its_joins(
    gate: Gate, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call can fail inside redis-py with no Redis error (a cluster client resetting its
    layout disconnects the connections in use: their writer is gone). The joins batched on
    it are answered with that error instead of waiting for ever."""
    store = gate.app[store_key]

    async def torn_down(keys: object, args: object, *, replicated: bool = False) -> None:
        # The writer of a connection its client disconnected, as in the failover.
        await Connection()._send_packed_command([b"PING"])

    monkeypatch.setattr(store, "_join", torn_down)
    answers = await asyncio.wait_for(asyncio.gather(
        *(store.join(f"t-{i}") for i in range(3)), return_exceptions=True), timeout=30)
    assert [type(answer) for answer in answers] == [AttributeError] * 3


async def test_redis_pys_own_slips_count_as_redis_trouble() -> None:
    """Such a failure is "busy, retry" at the boundary (`GateUnavailable`), like a lost
    connection; the same error raised by the gate's own code is not."""
    with pytest.raises(AttributeError) as inside:
        await Connection()._send_packed_command([b"PING"])
    assert _redis_trouble(inside.value)
    with pytest.raises(AttributeError) as ours:
        getattr(None, "writelines")  # noqa: B009
    assert not _redis_trouble(ours.value)
