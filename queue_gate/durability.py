"""Whether the room's Redis would keep the line through its own crash: persistence (an
append-only file or RDB snapshots) or a replica to take over.

A Redis with neither comes back empty after a restart: every waiting visitor's place and
every admitted visitor's pass recorded there is gone. The gate checks at start, says so
loudly in its log and in the metric `queuegate_redis_durable`, and, with
`QUEUE_GATE_REQUIRE_DURABLE_REDIS`, refuses to start. On a cluster every master is checked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from queue_gate.store import GateUnavailable, RedisClient

log = logging.getLogger(__name__)


class RedisNotDurable(Exception):
    """QUEUE_GATE_REQUIRE_DURABLE_REDIS is set and a Redis master has neither persistence
    nor a replica (or could not be asked)."""


@dataclass(frozen=True, slots=True)
class NodeDurability:
    """What one master keeps: `rdb` is None where CONFIG is refused (a managed Redis)."""

    node: str
    aof: bool
    rdb: bool | None
    replicas: int

    @property
    def durable(self) -> bool:
        return self.aof or bool(self.rdb) or self.replicas > 0

    def describe(self) -> str:
        rdb = "unknown (CONFIG GET refused)" if self.rdb is None else \
            ("on" if self.rdb else "off")
        return (f"{self.node}: appendonly {'on' if self.aof else 'off'}, RDB snapshots {rdb}, "
                f"{self.replicas} replica(s)")


async def check(client: RedisClient) -> list[NodeDurability]:
    """Ask every master (one, or each of a cluster's). Raises `GateUnavailable`."""
    try:
        if isinstance(client, RedisCluster):
            masters = RedisCluster.PRIMARIES
            persistence = await client.info("persistence", target_nodes=masters)
            replication = await client.info("replication", target_nodes=masters)
            saves = await _save_points(client, masters)
            return [_node(name, persistence[name], replication[name],
                          saves.get(name) if saves is not None else None)
                    for name in sorted(persistence)]
        persistence = await client.info("persistence")
        replication = await client.info("replication")
        saves = await _save_points(client, None)
        return [_node("redis", persistence, replication,
                      saves.get("redis") if saves is not None else None)]
    except (RedisError, OSError) as exc:
        raise GateUnavailable(str(exc)) from exc


async def _save_points(client: RedisClient, masters: str | None) -> dict[str, str] | None:
    """Each master's `save` setting (empty: no RDB snapshots); None where CONFIG is refused."""
    try:
        if isinstance(client, RedisCluster):
            found: Any = await client.config_get("save", target_nodes=masters)
            return {str(name): str(value.get("save", "")) for name, value in found.items()}
        config = await client.config_get("save")
        return {"redis": str(config.get("save", ""))}
    except ResponseError:
        return None  # renamed or forbidden CONFIG (managed services): RDB is unknown


def _node(name: str, persistence: Mapping[str, Any], replication: Mapping[str, Any],
          save: str | None) -> NodeDurability:
    return NodeDurability(
        node=name,
        aof=str(persistence.get("aof_enabled", "0")) == "1",
        rdb=None if save is None else bool(save.strip()),
        replicas=int(replication.get("connected_slaves", 0) or 0),
    )


def report(room: str, nodes: list[NodeDurability]) -> bool:
    """Log what was found, loudly when a master keeps nothing; True when all are durable."""
    weak = [node for node in nodes if not node.durable]
    for node in weak:
        log.error("room %s: REDIS IS NOT DURABLE: %s. If it restarts it comes back empty and "
                  "every waiting visitor loses their place. Turn on appendonly (or RDB "
                  "snapshots) or add a replica; QUEUE_GATE_REQUIRE_DURABLE_REDIS=1 makes the "
                  "gate refuse such a Redis.", room, node.describe())
    if not weak:
        log.info("room %s: Redis keeps the line through a restart: %s", room,
                 "; ".join(node.describe() for node in nodes))
    return not weak
