"""Visitors who leave: does the backend still get the configured rate of visitors who stayed?

    .venv/bin/python -m bench.abandon            # 3,000 visitors, 30 % leave, 2 gates, 2 min
    .venv/bin/python -m bench.abandon --quick    # smaller and shorter, a smoke run

Starts a private Redis, N gate processes (`python -m queue_gate`) and an in-process
stand-in backend that records when each admitted visitor (each pass) first arrives. All
visitors join while the room is paused; a share of them leave at once (never poll again),
the others poll exactly when `poll_after_s` says and, once admitted, make one request
through the gate with their pass. When the leavers have been away for longer than the
grace period the room opens, and the backend's arrivals per minute are measured over a
window in which a backlog of present visitors always exists. Issue #4's figure: within 5 %
of the configured rate.

The grace period and poll intervals are shortened (`--grace-s`, the poll bounds follow) so
the run takes minutes, not the production default's quarter of an hour; the mechanism is
the same.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from devtools.processes import free_port, stop_process
from devtools.servers import private_redis

log = logging.getLogger("bench.abandon")
ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-abandon-secret"
ADMIN_TOKEN = "bench-abandon-admin"


@dataclass
class Backend:
    """Counts first arrivals per pass: admitted visitors who were there to use it."""

    arrivals: dict[str, float] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Queue-Pass", "")
        self.arrivals.setdefault(token, time.monotonic())
        return web.Response(text="ok")


@dataclass
class Result:
    configured_per_min: float
    measured_per_min: float
    window_s: float
    arrivals_in_window: int
    left_while_waiting: int
    admitted: int
    stayers: int
    leavers: int


async def visitor(session: aiohttp.ClientSession, gate: str, leaves: bool,
                  stop_at: float) -> None:
    async with session.post(f"{gate}/queue/api/join") as response:
        body = await response.json()
    if response.status != 201 or leaves:
        return
    ticket = body["ticket"]
    delay = float(body["poll_after_s"])
    while time.monotonic() < stop_at:
        await asyncio.sleep(min(delay, max(stop_at - time.monotonic(), 0)))
        async with session.get(f"{gate}/queue/api/status",
                               headers={"Authorization": f"Bearer {ticket}"}) as response:
            if response.status != 200:
                log.warning("status %s: %s", response.status, await response.text())
                return
            body = await response.json()
        if body["state"] == "admitted":
            async with session.get(f"{gate}/book", headers={"X-Queue-Pass": body["pass"],
                                                            "Accept": "application/json"}):
                return
        delay = float(body["poll_after_s"])


def start_gates(count: int, redis_url: str, backend_url: str, rate: int,
                grace_s: float) -> tuple[list[subprocess.Popen[bytes]], list[str], list[str]]:
    procs, publics, admins = [], [], []
    env = {
        **os.environ,
        "REDIS_URL": redis_url, "QUEUE_GATE_SECRETS": SECRET,
        "QUEUE_GATE_ADMIN_TOKEN": ADMIN_TOKEN, "BACKEND_URL": backend_url,
        "QUEUE_GATE_RATE_PER_MINUTE": str(rate), "QUEUE_GATE_MODE": "paused",
        "QUEUE_GATE_ABANDON_GRACE_S": str(grace_s),
        "QUEUE_GATE_POLL_MIN_S": "1", "QUEUE_GATE_POLL_MAX_S": str(grace_s / 2),
        "QUEUE_GATE_JOIN_LIMIT": "0", "QUEUE_GATE_COOKIE_SECURE": "0",
    }
    for _ in range(count):
        port, admin_port = free_port(), free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "queue_gate", "--host", "127.0.0.1", "--port", str(port),
             "--admin-port", str(admin_port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        publics.append(f"http://127.0.0.1:{port}")
        admins.append(f"http://127.0.0.1:{admin_port}")
    return procs, publics, admins


async def wait_healthy(session: aiohttp.ClientSession, urls: list[str]) -> None:
    deadline = time.monotonic() + 20
    for url in urls:
        while True:
            try:
                async with session.get(f"{url}/queue/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gate {url} did not become healthy")
            await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, redis_url: str) -> Result:
    backend = Backend()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", backend.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    backend_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", backend_port).start()
    procs, gates, admins = start_gates(args.gates, redis_url,
                                       f"http://127.0.0.1:{backend_port}", args.rate,
                                       args.grace_s)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    rng = random.Random(4)  # which visitors leave: fixed, so runs compare
    try:
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector,
                                         cookie_jar=aiohttp.DummyCookieJar(),
                                         timeout=aiohttp.ClientTimeout(total=30)) as session:
            await wait_healthy(session, gates)
            leaves = [rng.random() < args.leave for _ in range(args.visitors)]
            opens_after = args.grace_s * 1.6 + 5  # leavers away for longer than the grace
            stop_at = time.monotonic() + opens_after + args.measure_s + 15
            tasks = [asyncio.create_task(visitor(session, gates[i % len(gates)], leaves[i],
                                                 stop_at))
                     for i in range(args.visitors)]
            await asyncio.sleep(opens_after)
            async with session.patch(f"{admins[0]}/admin/rooms/default", headers=auth,
                                      json={"mode": "queue"}) as response:
                assert response.status == 200, await response.text()
            opened = time.monotonic()
            await asyncio.sleep(args.measure_s + 10)
            async with session.get(f"{admins[0]}/admin/rooms/default",
                                   headers=auth) as response:
                room = await response.json()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for proc in procs:
            stop_process(proc)
        await runner.cleanup()
    # Skip the first seconds: visitors notice their admission within one poll interval.
    start, end = opened + 10, opened + 10 + args.measure_s
    in_window = [t for t in backend.arrivals.values() if start <= t < end]
    stayers = leaves.count(False)
    return Result(
        configured_per_min=args.rate,
        measured_per_min=len(in_window) * 60 / args.measure_s,
        window_s=args.measure_s,
        arrivals_in_window=len(in_window),
        left_while_waiting=int(room["left_while_waiting"]),
        admitted=int(room["admitted"]),
        stayers=stayers,
        leavers=args.visitors - stayers,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.abandon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller and shorter")
    parser.add_argument("--visitors", type=int, default=3000)
    parser.add_argument("--leave", type=float, default=0.3, help="share who leave")
    parser.add_argument("--rate", type=int, default=600, help="admissions per minute")
    parser.add_argument("--gates", type=int, default=2)
    parser.add_argument("--grace-s", type=float, default=20.0)
    parser.add_argument("--measure-s", type=float, default=120.0)
    parser.add_argument("--runs", type=int, default=3, help="repeat and report the median")
    args = parser.parse_args(argv)
    if args.quick:
        args.visitors, args.measure_s, args.runs = 600, 30.0, 1
    results = []
    for number in range(args.runs):
        with private_redis() as redis_url:
            result = asyncio.run(run(args, redis_url))
        log.info("run %d: %.1f/min of %d configured (%d arrivals in %.0f s); %d left while "
                 "waiting, %d admitted", number + 1, result.measured_per_min,
                 args.rate, result.arrivals_in_window, result.window_s,
                 result.left_while_waiting, result.admitted)
        results.append(result)
    measured = statistics.median(r.measured_per_min for r in results)
    sys.stdout.write(
        f"\n| visitors | leave | gates | configured/min | measured/min (median of {len(results)}) "
        f"| ratio | runs |\n|---|---|---|---|---|---|---|\n"
        f"| {args.visitors:,} | {args.leave:.0%} | {args.gates} | {args.rate} | "
        f"{measured:.1f} | {measured / args.rate:.3f} | "
        f"{', '.join(f'{r.measured_per_min:.1f}' for r in results)} |\n")


if __name__ == "__main__":
    main()
