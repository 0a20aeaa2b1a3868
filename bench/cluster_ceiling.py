"""The gate's ceiling on a Redis Cluster against a single Redis (issue 12), side by side.

    .venv/bin/python -m bench.cluster_ceiling [--rounds 5] [--seconds 4]
    .venv/bin/python -m bench.cluster_ceiling --quick   # a smoke test of a few seconds

One gate process on a private single redis-server and one on a private cluster of three
masters with a replica each (`QUEUE_GATE_REDIS_CLUSTER=1`), the same room name, each pinned
to core 1, wrk (64 connections) on core 0, measured in interleaved rounds (single, cluster,
single, cluster, ...) by `bench.compare.measure`: status polls of waiting visitors and
joins of fresh ones. For each: req/s, the gate's CPU µs per request, the Redis CPU µs
per request (the master holding the room's slot, and on the cluster all six nodes
together, replicas included), and the round trip of the room's tick under that load,
timed by a probe that ticks the same room 20 times a second through queue_gate's own store
(as a second, idle gate process would). The gate serves one room per process, so one room
lives on one master of the cluster: this measures what the cluster client costs a gate, not
the spread of several rooms over the shards. Prints a table and writes the raw rounds as
JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import redis

from bench.compare import Case, Measured, gate_cases, measure
from bench.failover import slot_master
from bench.launch import NO_BACKEND, SERVER_CPU, percentile
from bench.procs import ADMIN_TOKEN, SECRET, stack
from devtools.servers import LocalServer, private_redis_cluster, redis_server
from queue_gate.settings import Settings
from queue_gate.store import RoomKeys, RoomStore, connect

log = logging.getLogger(__name__)

ROOM = "ceiling"
RESULTS = Path(__file__).resolve().parent / "results" / "cluster_ceiling.json"
SETUPS = ("single", "cluster")
LOADS = ("status", "join")


def cpu_of(servers: list[LocalServer]) -> Callable[[], float]:
    return lambda: sum(server.process.cpu_seconds() for server in servers)


def room_master(nodes: tuple[LocalServer, ...]) -> LocalServer:
    """The cluster node that is master of the room's slot (all its keys share one tag)."""
    with redis.Redis.from_url(nodes[0].url) as client:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", RoomKeys(ROOM).state))
    port = slot_master(nodes[0].url, slot)
    return next(node for node in nodes if node.url.endswith(f":{port}/0"))


class TickProbe:
    """Times the room's tick (tick-11.lua through `queue_gate.store.RoomStore.tick`, the
    gates' own call) every 50 ms, in a thread of its own, while a load runs. Extra ticks
    admit nobody: a tick admits for the time passed since the room's last one, whoever
    ticked."""

    def __init__(self, redis_url: str, *, cluster: bool) -> None:
        self.settings = Settings(redis_url=redis_url, redis_cluster=cluster, room=ROOM,
                                 secrets=(SECRET,), admin_token=ADMIN_TOKEN)
        self.runs_ms: list[list[float]] = []  # one list per run of the load

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()
        samples: list[float] = []
        thread = threading.Thread(target=lambda: asyncio.run(self._tick(stop, samples)),
                                  name="tick-probe")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.runs_ms.append(samples)

    async def _tick(self, stop: threading.Event, samples: list[float]) -> None:
        connection = connect(self.settings, max_connections=2, wait_s=5)
        store = RoomStore(connection.client, self.settings)
        try:
            await store.tick()  # connects and loads the script: not counted
            while not stop.is_set():
                started = time.perf_counter()
                await store.tick()
                samples.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.05)
        finally:
            await connection.aclose()


def ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of the per-round ratios (rounds ran next to each other, so they share the
    machine's load of the moment)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def table(found: dict[str, Measured], ticks: dict[str, list[float]]) -> str:
    lines = ["| Redis | load | req/s | gate CPU µs/req | Redis CPU µs/req (room's master) | "
             "Redis CPU µs/req (all nodes) | tick p50 / p99 ms | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for load in LOADS:
        for setup in SETUPS:
            m = found[f"{setup}:{load}"]
            lines.append(f"| {setup} | {load} | {statistics.median(m.rps):.0f} | "
                         f"{statistics.median(m.cpu_us):.1f} | "
                         f"{statistics.median(m.meter_us['redis_master']):.1f} | "
                         f"{statistics.median(m.meter_us['redis_all']):.1f} | "
                         f"{percentile(ticks[f'{setup}:{load}'], 50):.2f} / "
                         f"{percentile(ticks[f'{setup}:{load}'], 99):.2f} | "
                         f"{sum(m.errors)} |")
    lines.append("")
    for load in LOADS:
        single, cluster = found[f"single:{load}"], found[f"cluster:{load}"]
        lines.append(f"{load}: cluster/single req/s {ratio(cluster.rps, single.rps):.2f}, "
                     f"gate CPU per request {ratio(cluster.cpu_us, single.cpu_us):.2f} "
                     f"(medians of {len(single.rps)} rounds' ratios)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--quick", action="store_true",
                        help="one round of 1 s each, no warm-up, few tickets (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, args.seconds)
    tickets, ahead = (200, 100) if args.quick else (2000, 500)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    workdir = args.out.parent / "cluster-ceiling"
    workdir.mkdir(parents=True, exist_ok=True)
    with redis_server() as single, private_redis_cluster(masters=3, replicas=1) as cluster, \
            stack(workdir / "logs", single.url) as st:
        single_gate = st.gate("gate-single", ROOM, rate_per_minute=60, backend_url=NO_BACKEND,
                              cpus=SERVER_CPU)
        cluster_gate = st.gate("gate-cluster", ROOM, rate_per_minute=60,
                               backend_url=NO_BACKEND, cpus=SERVER_CPU,
                               redis_url=cluster.url,
                               extra_env={"QUEUE_GATE_REDIS_CLUSTER": "1"})
        master = room_master(cluster.servers)
        log.info("the room's slot is on the cluster master %s", master.url)
        single_cases = gate_cases(single_gate, workdir, "single", tickets=tickets, ahead=ahead,
                                  meters={"redis_master": cpu_of([single]),
                                          "redis_all": cpu_of([single])})
        cluster_cases = gate_cases(cluster_gate, workdir, "cluster", tickets=tickets,
                                   ahead=ahead,
                                   meters={"redis_master": cpu_of([master]),
                                           "redis_all": cpu_of(list(cluster.servers))})
        probes = {f"{setup}:{load}": TickProbe(url, cluster=setup == "cluster")
                  for setup, url in (("single", single.url), ("cluster", cluster.url))
                  for load in LOADS}
        # Interleaved: each load on the single Redis, then at once on the cluster.
        cases: dict[str, Case] = {}
        for load in LOADS:
            for setup, setup_cases in (("single", single_cases), ("cluster", cluster_cases)):
                name = f"{setup}:{load}"
                cases[name] = dataclasses.replace(setup_cases[name],
                                                  alongside=probes[name].running)
        found = measure(cases, rounds=rounds, seconds=seconds, warm_up=not args.quick)
    counted = 0 if args.quick else 1  # the warm-up round's ticks are not counted
    ticks = {name: [ms for run in probe.runs_ms[counted:] for ms in run]
             for name, probe in probes.items()}
    args.out.write_text(json.dumps({"rounds": rounds, "seconds": seconds, "room": ROOM,
                                    "cases": {name: asdict(m) for name, m in found.items()},
                                    "tick_ms": ticks}, indent=2) + "\n")
    sys.stdout.write(table(found, ticks) + "\n")


if __name__ == "__main__":
    main()
