"""The gate's ceiling on a Redis Cluster against a single Redis (issue 12), side by side,
and on the launch-day set-up (a master and a replica behind Sentinel) beside them.

    .venv/bin/python -m bench.cluster_ceiling [--rounds 9] [--seconds 4]
    .venv/bin/python -m bench.cluster_ceiling --quick   # a smoke test of a few seconds

One gate process per set-up, the same room name, each pinned to core 1, wrk (64
connections) on core 0, measured in interleaved rounds (single, Sentinel, cluster, single,
...) by `bench.compare.measure`: status polls of waiting visitors and joins of fresh ones.
The set-ups, all without persistence (AOF's cost is not in these figures):

- single: one redis-server (`REDIS_URL`); the gate sends no WAIT (no replica);
- sentinel: a master and a replica watched by three Sentinels
  (`QUEUE_GATE_REDIS_SENTINELS`): every write waits for the replica (`WAIT 1`);
- cluster: three masters with a replica each (`QUEUE_GATE_REDIS_CLUSTER=1`): the waited-for
  scripts go to the slot's master over a client of that node, with `WAIT 1` behind them.

For each: req/s, the gate's CPU µs per request, the Redis CPU µs per request (the master
holding the room, and every process of the set-up together: replicas, other masters,
Sentinels), and the round trip of the room's tick under that load, timed by a probe that
ticks the same room 20 times a second through queue_gate's own store (as a second, idle
gate process would). The gate serves one room per process, so one room lives on one master
of the cluster: this measures what the cluster client costs a gate, not the spread of
several rooms over the shards. Prints a table and writes the raw rounds as JSON.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from bench.compare import Case, Measured, gate_cases, measure
from bench.failover import slot_master
from bench.launch import NO_BACKEND, SERVER_CPU, percentile
from bench.procs import ADMIN_TOKEN, SECRET, stack
from devtools.servers import (
    LocalServer,
    private_redis_cluster,
    private_sentinel,
    redis_server,
)
from queue_gate.settings import Settings
from queue_gate.store import RoomKeys, RoomStore, connect

log = logging.getLogger(__name__)

ROOM = "ceiling"
RESULTS = Path(__file__).resolve().parent / "results" / "cluster_ceiling.json"
SETUPS = ("single", "sentinel", "cluster")
LOADS = ("status", "join")


@dataclass(frozen=True)
class SetUp:
    """One way to reach Redis: the gate's environment, and the servers to charge."""

    name: str
    env: dict[str, str]  # REDIS_URL and the QUEUE_GATE_REDIS_* settings
    master: LocalServer  # holds the room
    servers: list[LocalServer]  # every process of the set-up, the master included

    def settings(self) -> Settings:
        return Settings(redis_url=self.env["REDIS_URL"],
                        redis_cluster=self.env.get("QUEUE_GATE_REDIS_CLUSTER") == "1",
                        redis_sentinels=tuple(filter(None, self.env.get(
                            "QUEUE_GATE_REDIS_SENTINELS", "").split(","))),
                        redis_master=self.env.get("QUEUE_GATE_REDIS_MASTER", ""),
                        room=ROOM, secrets=(SECRET,), admin_token=ADMIN_TOKEN)


def cpu_of(servers: list[LocalServer]) -> Callable[[], float]:
    return lambda: sum(server.process.cpu_seconds() for server in servers)


def wait_for_replicas(masters: list[LocalServer], timeout_s: float = 30.0) -> None:
    """Until every master's ROLE lists a connected replica (a new cluster's replicas are
    still in their handshake for a few seconds; meanwhile the gate sends no WAIT)."""
    deadline = time.monotonic() + timeout_s
    for master in masters:
        with redis.Redis.from_url(master.url) as client:
            while not client.execute_command("ROLE")[2]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no replica connected to {master.url}")
                time.sleep(0.2)


def room_master(nodes: tuple[LocalServer, ...]) -> LocalServer:
    """The cluster node that is master of the room's slot (all its keys share one tag)."""
    with redis.Redis.from_url(nodes[0].url) as client:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", RoomKeys(ROOM).state))
    port = slot_master(nodes[0].url, slot)
    return next(node for node in nodes if node.url.endswith(f":{port}/0"))


@contextlib.contextmanager
def set_ups(names: list[str]) -> Iterator[list[SetUp]]:
    """The private servers of the named set-ups, started and stopped together."""
    with contextlib.ExitStack() as started:
        found = []
        for name in names:
            if name == "single":
                single = started.enter_context(redis_server())
                found.append(SetUp(name, {"REDIS_URL": single.url}, single, [single]))
            elif name == "sentinel":
                watched = started.enter_context(private_sentinel())
                found.append(SetUp(name, {
                    "REDIS_URL": "redis://ignored/0",  # Sentinel names the master
                    "QUEUE_GATE_REDIS_SENTINELS": ",".join(watched.sentinels),
                    "QUEUE_GATE_REDIS_MASTER": watched.master_name},
                    watched.master, [watched.master, watched.replica,
                                     *watched.sentinel_servers]))
            else:
                cluster = started.enter_context(private_redis_cluster(masters=3, replicas=1))
                master = room_master(cluster.servers)
                log.info("the room's slot is on the cluster master %s", master.url)
                wait_for_replicas([master])
                found.append(SetUp(name, {"REDIS_URL": cluster.url,
                                          "QUEUE_GATE_REDIS_CLUSTER": "1"},
                                   master, list(cluster.servers)))
        yield found


class TickProbe:
    """Times the room's tick (tick-11.lua through `queue_gate.store.RoomStore.tick`, the
    gates' own call) every 50 ms, in a thread of its own, while a load runs. Extra ticks
    admit nobody: a tick admits for the time passed since the room's last one, whoever
    ticked."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
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


def table(found: dict[str, Measured], ticks: dict[str, list[float]], names: list[str]) -> str:
    lines = ["| Redis | load | req/s | gate CPU µs/req | Redis CPU µs/req (room's master) | "
             "Redis CPU µs/req (all processes) | tick p50 / p99 ms | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for load in LOADS:
        for setup in names:
            name = f"{setup}:{load}"
            m = found[name]
            lines.append(f"| {setup} | {load} | {statistics.median(m.rps):.0f} | "
                         f"{statistics.median(m.cpu_us):.1f} | "
                         f"{statistics.median(m.meter_us['redis_master']):.1f} | "
                         f"{statistics.median(m.meter_us['redis_all']):.1f} | "
                         f"{percentile(ticks[name], 50):.2f} / "
                         f"{percentile(ticks[name], 99):.2f} | {sum(m.errors)} |")
    lines.append("")
    base = names[0]
    for load in LOADS:
        for setup in names[1:]:
            one, other = found[f"{base}:{load}"], found[f"{setup}:{load}"]
            lines.append(f"{load}: {setup}/{base} req/s {ratio(other.rps, one.rps):.2f}, "
                         f"gate CPU per request {ratio(other.cpu_us, one.cpu_us):.2f} "
                         f"(medians of {len(one.rps)} rounds' ratios)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help="comma-separated, the first is the one the others are set against")
    parser.add_argument("--quick", action="store_true",
                        help="one round of 1 s each, no warm-up, few tickets (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.setups.split(",")
    if not names or not set(names) <= set(SETUPS) or len(set(names)) != len(names):
        parser.error(f"--setups: each of {', '.join(SETUPS)} at most once")
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, args.seconds)
    tickets, ahead = (200, 100) if args.quick else (2000, 500)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    workdir = args.out.parent / "cluster-ceiling"
    workdir.mkdir(parents=True, exist_ok=True)
    with set_ups(names) as found_setups, stack(workdir / "logs", "") as st:
        cases: dict[str, Case] = {}
        probes: dict[str, TickProbe] = {}
        for setup in found_setups:
            env = dict(setup.env)
            gate = st.gate(f"gate-{setup.name}", ROOM, rate_per_minute=60,
                           backend_url=NO_BACKEND, cpus=SERVER_CPU,
                           redis_url=env.pop("REDIS_URL"), extra_env=env)
            meters = {"redis_master": cpu_of([setup.master]),
                      "redis_all": cpu_of(setup.servers)}
            for name, case in gate_cases(gate, workdir, setup.name, tickets=tickets,
                                         ahead=ahead, meters=meters).items():
                probes[name] = TickProbe(setup.settings())
                cases[name] = dataclasses.replace(case, alongside=probes[name].running)
        # Interleaved: each load on every set-up in turn, then the next load.
        order = [f"{setup}:{load}" for load in LOADS for setup in names]
        found = measure({name: cases[name] for name in order}, rounds=rounds,
                        seconds=seconds, warm_up=not args.quick)
    counted = 0 if args.quick else 1  # the warm-up round's ticks are not counted
    ticks = {name: [ms for run in probe.runs_ms[counted:] for ms in run]
             for name, probe in probes.items()}
    args.out.write_text(json.dumps({"rounds": rounds, "seconds": seconds, "room": ROOM,
                                    "setups": names,
                                    "cases": {name: asdict(m) for name, m in found.items()},
                                    "tick_ms": ticks}, indent=2) + "\n")
    sys.stdout.write(table(found, ticks, names) + "\n")


if __name__ == "__main__":
    main()
