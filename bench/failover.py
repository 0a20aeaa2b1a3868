"""Redis failures during a rush (issue 12): what each cost the visitors, in figures.

`python -m bench.failover [--visitors 5000] [--measure-s 60] [--only aof,empty,...]`

Two gate processes (`bench.procs.stack`) in front of a stand-in backend; a rush of visitors
(`tests.queue_gate.rush_under_fault.Rush`, the fault tests' own visitors) joins over
`--arrival-s`; `FAULT_AT_S` after the start one fault strikes:

- aof: Redis with appendonly/everysec killed with SIGKILL, started again on its files 2 s later;
- empty: the gate's own private Redis flushed (FLUSHALL: it comes back empty at once);
- sentinel: the Sentinel master killed with SIGKILL, the replica promoted;
- cluster: the master holding the room's slot killed with SIGKILL, its replica promoted.

Each scenario logs and records the counts that must be 0, the seconds until admissions
resume, and the admissions in the `--measure-s` after that against the rate setting. The
figures go to `bench/results/failover.json` (docs/benchmarks.md quotes them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis
import redis.asyncio as aioredis
from aiohttp import web

from bench.procs import SECRET, Stack, stack
from devtools.binaries import find_redis_server
from devtools.processes import HOST, ManagedProcess, free_port
from devtools.servers import private_redis, private_redis_cluster, private_sentinel
from queue_gate.store import RoomKeys
from tests.queue_gate.rush_under_fault import ANSWER_TIMEOUT, Counts, Rush

log = logging.getLogger(__name__)

ROOM = "failover"
FAULT_AT_S = 6.0
RESTART_AFTER_S = 2.0
# Budget from the fault to the first admission after it; the measured minute follows.
RESUME_BUDGET_S = 20.0
RESULTS = Path(__file__).resolve().parent / "results" / "failover.json"

# A fault: strikes, waits until it is over, returns. Rush.fault_at/recovered_at are set
# around it by `run_scenario`.
Fault = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Figures:
    """One scenario's outcome: the rush's counts plus what this benchmark adds."""

    scenario: str
    counts: dict[str, Any]
    still_waiting: int  # joined, not admitted when the rush stopped (the rate's limit)
    skipped: int  # waiting at the end although a later number was admitted well before
    bad_5xx_sample: list[str]
    rate_setting_per_minute: int
    measured_s: float
    admitted_in_window: int
    admitted_per_minute: float


async def echo(request: web.Request) -> web.Response:
    """The stand-in booking backend: every request through a valid pass gets 200."""
    return web.json_response({"path": request.path})


@contextlib.asynccontextmanager
async def backend() -> AsyncIterator[str]:
    """An in-process backend on a free loopback port; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    try:
        yield f"http://{HOST}:{port}/"
    finally:
        await runner.cleanup()


class RestartableRedis:
    """A Redis with AOF (appendfsync everysec) on a fixed port and folder, so that after a
    SIGKILL it can be started again on its own files, as a supervisor would."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        program = find_redis_server()
        self.argv = [str(program.path), "--port", str(self.port), "--bind", HOST,
                     "--save", "", "--dir", str(workdir), "--daemonize", "no",
                     "--appendonly", "yes", "--appendfsync", "everysec"]
        self.process = self.start()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> ManagedProcess:
        process = ManagedProcess.start("redis-aof", self.argv,
                                       log_path=self.workdir / "redis.log")
        process.wait_for_port(self.port)
        return process

    def ready(self) -> bool:
        """True once it answers commands (not LOADING its AOF any more)."""
        try:
            with redis.Redis.from_url(self.url) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
    """Until `check()` is true, looking every 50 ms; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"not done within {timeout_s:g} s")


async def run_rush(gates: list[str], fault: Fault, args: argparse.Namespace) -> Rush:
    """The rush at `gates`, `fault` struck FAULT_AT_S after its start."""
    rush = Rush(gates, SECRET, visitors=args.visitors, arrival_s=args.arrival_s,
                poll_cap_s=args.poll_cap_s)

    async def strike() -> None:
        await asyncio.sleep(FAULT_AT_S)
        rush.fault_at = time.monotonic()
        await fault()
        rush.recovered_at = time.monotonic()
        log.info("fault over after %.2f s", rush.recovered_at - rush.fault_at)
        # Visitors admitted before the fault try their pass again once it is over.
        await asyncio.sleep(1.0)
        rush.done.set()

    until_s = FAULT_AT_S + RESUME_BUDGET_S + args.measure_s + 2 * args.poll_cap_s
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=ANSWER_TIMEOUT) as session:
        striking = asyncio.create_task(strike())
        await rush.run(session, until_s=until_s)
        await striking
    return rush


def figures(name: str, rush: Rush, args: argparse.Namespace) -> Figures:
    """The rush's counts, with a rate limit's 'not admitted yet' told apart from a loss."""
    counts: Counts = rush.counts()
    joined = [v for v in rush.visitors if v.ticket]
    admitted = [v for v in joined if v.admitted_at is not None]
    waiting = [v for v in joined if v.admitted_at is None and not v.refused]
    end = rush.started + FAULT_AT_S + RESUME_BUDGET_S + args.measure_s + 2 * args.poll_cap_s
    # A visitor polls at least every poll_cap_s: one admitted this long before the end was
    # seen in time, so anyone still waiting with a lower number of that epoch was skipped.
    settled = end - 3 * args.poll_cap_s
    skipped = sum(1 for v in waiting if any(
        a.epoch == v.epoch and a.number > v.number and a.admitted_at is not None
        and a.admitted_at < settled for a in admitted))
    start = rush.fault_at + counts.resumed_after_s \
        if rush.fault_at is not None and counts.resumed_after_s is not None else None
    measured_s, in_window = 0.0, 0
    if start is not None:
        stop = min(start + args.measure_s, settled)
        measured_s = max(0.0, stop - start)
        in_window = sum(1 for v in admitted
                        if v.admitted_at is not None and start <= v.admitted_at < stop)
    values = asdict(counts)
    # Rush counts every visitor not admitted as lost; under a rate limit most are only
    # waiting: a place counts as lost here if it never got a ticket, was refused or skipped.
    values["places_lost"] = (counts.visitors - counts.joined) + counts.tickets_refused \
        + skipped
    return Figures(
        scenario=name, counts=values, still_waiting=len(waiting), skipped=skipped,
        bad_5xx_sample=rush.bad_5xx[:10], rate_setting_per_minute=args.rate,
        measured_s=round(measured_s, 1), admitted_in_window=in_window,
        admitted_per_minute=round(in_window * 60 / measured_s, 1) if measured_s else 0.0)


def start_gates(running: Stack, args: argparse.Namespace, backend_url: str,
                extra_env: dict[str, str]) -> list[str]:
    env = {"QUEUE_GATE_JOIN_LIMIT": "0", **extra_env}
    return [running.gate(f"gate-{i}", ROOM, rate_per_minute=args.rate,
                         backend_url=backend_url, extra_env=env).url for i in range(2)]


async def scenario_aof(args: argparse.Namespace, logs: Path, backend_url: str) -> Rush:
    with tempfile.TemporaryDirectory(prefix="bench-failover-aof-") as tmp:
        server = RestartableRedis(Path(tmp))
        try:
            with stack(logs / "aof", server.url) as running:
                gates = start_gates(running, args, backend_url, {})

                async def fault() -> None:
                    server.process.kill()
                    await asyncio.sleep(RESTART_AFTER_S)
                    server.process = await asyncio.to_thread(server.start)
                    await wait_until(lambda: asyncio.to_thread(server.ready))

                return await run_rush(gates, fault, args)
        finally:
            server.process.stop()


async def scenario_empty(args: argparse.Namespace, logs: Path, backend_url: str) -> Rush:
    with private_redis() as url, stack(logs / "empty", url) as running:
        gates = start_gates(running, args, backend_url, {})
        client = aioredis.Redis.from_url(url)

        async def fault() -> None:
            await client.flushall()  # our own private Redis

        try:
            return await run_rush(gates, fault, args)
        finally:
            await client.aclose()


async def sentinel_master(sentinel: str, name: str) -> tuple[str, int] | None:
    host, _, port = sentinel.rpartition(":")
    client = aioredis.Redis(host=host, port=int(port), decode_responses=True)
    try:
        found = await client.execute_command(  # type: ignore[no-untyped-call]
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
    finally:
        await client.aclose()
    return (str(found[0]), int(found[1])) if found else None


async def scenario_sentinel(args: argparse.Namespace, logs: Path, backend_url: str) -> Rush:
    with private_sentinel(down_after_ms=1000, failover_timeout_ms=3000) as sentinel, \
            stack(logs / "sentinel", "redis://127.0.0.1:6379/0") as running:
        gates = start_gates(running, args, backend_url, {
            "QUEUE_GATE_REDIS_SENTINELS": ",".join(sentinel.sentinels),
            "QUEUE_GATE_REDIS_MASTER": sentinel.master_name,
            "QUEUE_GATE_REQUIRE_DURABLE_REDIS": "1"})
        before = await sentinel_master(sentinel.sentinels[0], sentinel.master_name)

        async def fault() -> None:
            sentinel.master.process.kill()
            # The failover is complete once the Sentinels name another master.
            async def moved() -> bool:
                return await sentinel_master(sentinel.sentinels[0],
                                             sentinel.master_name) != before

            await wait_until(moved)

        return await run_rush(gates, fault, args)


def slot_master(url: str, slot: int) -> int | None:
    """The port of the master serving `slot`, as the node at `url` sees it."""
    try:
        with redis.Redis.from_url(url) as client:
            for first, last, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(first) <= slot <= int(last):
                    return int(master[1])
    except redis.RedisError:
        return None
    return None


async def scenario_cluster(args: argparse.Namespace, logs: Path, backend_url: str) -> Rush:
    with private_redis_cluster(masters=3, replicas=1) as cluster, \
            stack(logs / "cluster", cluster.url) as running:
        gates = start_gates(running, args, backend_url, {"QUEUE_GATE_REDIS_CLUSTER": "1"})
        with redis.Redis.from_url(cluster.url) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", RoomKeys(ROOM).state))
        port = slot_master(cluster.url, slot)
        victim = next(s for s in cluster.servers if s.url.endswith(f":{port}/0"))
        witness = next(s for s in cluster.servers if s is not victim)

        async def fault() -> None:
            victim.process.kill()
            # Complete once the surviving nodes give the slot to another master.
            async def moved() -> bool:
                now = await asyncio.to_thread(slot_master, witness.url, slot)
                return now not in (port, None)

            await wait_until(moved)

        return await run_rush(gates, fault, args)


SCENARIOS = {"aof": scenario_aof, "empty": scenario_empty, "sentinel": scenario_sentinel,
             "cluster": scenario_cluster}


@contextlib.contextmanager
def logdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        yield Path(tmp)


async def main_async(args: argparse.Namespace) -> list[Figures]:
    results: list[Figures] = []
    with logdir() as logs:
        async with backend() as backend_url:
            for name in args.only.split(","):
                log.info("scenario %s: %d visitors over %.0f s, fault at %.0f s, rate %d/min",
                         name, args.visitors, args.arrival_s, FAULT_AT_S, args.rate)
                rush = await SCENARIOS[name](args, logs, backend_url)
                found = figures(name, rush, args)
                log.info("scenario %s: %s", name, json.dumps(asdict(found)))
                results.append(found)
                previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
                previous[name] = asdict(found)
                RESULTS.write_text(json.dumps(previous, indent=2) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--arrival-s", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=600, help="admissions per minute")
    parser.add_argument("--measure-s", type=float, default=60.0)
    parser.add_argument("--poll-cap-s", type=float, default=5.0)
    parser.add_argument("--only", default="aof,empty,sentinel,cluster")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
