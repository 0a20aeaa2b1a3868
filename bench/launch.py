"""Launch-day benchmark of the queue gate (issue #6).

    .venv/bin/python -m bench.launch --quick   # smoke test, under a minute, no docs written
    .venv/bin/python -m bench.launch           # the full run (~15 min), writes docs/

Starts the real stack on loopback (a private redis-server, a backend, N `python -m
queue_gate` processes), then measures, each phase side by side in one run: the ceiling
against bare aiohttp handlers (wrk), rate accuracy with 1, 2 and 4 gate processes, the rush
(asyncio generator) with and without the gate in front of the backend, Redis cost, and the
largest waiting population the machine sustains. Results go to bench/results/<stamp>/; the
full run also rewrites the results block of docs/benchmarks.md and docs/img/bench-*.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis

from bench import model, wrkrun
from bench.procs import ADMIN_TOKEN, Proc, Stack, stack, visitor_address
from bench.rush import RushSpec
from devtools.processes import cpu_seconds
from devtools.servers import private_postgres, private_redis

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
NO_BACKEND = "http://127.0.0.1:9"  # the ceiling and scale phases never reach the backend
SERVER_CPU = "1"  # single-process servers of the ceiling phase get core 1, wrk core 0
LOAD_CPU = "0"


@dataclass(frozen=True)
class Config:
    quick: bool
    ceiling_reps: int
    ceiling_s: float
    ceiling_connections: int
    rate_per_minute: int
    rate_gates: tuple[int, ...]
    rate_measure_s: float
    rush_visitors: int
    rush_arrival_s: float
    rush_duration_s: float
    rush_rate_per_minute: int
    rush_gates: int
    rush_workers: int
    leave_share: float
    backend_connections: int  # QUEUE_GATE_BACKEND_MAX_CONNECTIONS, all gates together
    backend_days: int  # days of demo slots the backend starts with
    scale_population: int
    scale_rate_per_minute: int  # the admission rate the waiting population is modelled at
    scale_join_cap_s: float
    scale_status_s: float
    scale_connections: tuple[int, ...]

    @classmethod
    def for_mode(cls, quick: bool) -> Config:
        if quick:
            return cls(quick=True, ceiling_reps=1, ceiling_s=2, ceiling_connections=32,
                       rate_per_minute=6000, rate_gates=(2,), rate_measure_s=3,
                       rush_visitors=1500, rush_arrival_s=5, rush_duration_s=7,
                       rush_rate_per_minute=3000, rush_gates=2, rush_workers=1,
                       leave_share=0.1, backend_connections=32, backend_days=45,
                       scale_population=6000,
                       scale_rate_per_minute=3000,
                       scale_join_cap_s=15, scale_status_s=2, scale_connections=(32,))
        return cls(quick=False, ceiling_reps=5, ceiling_s=5, ceiling_connections=64,
                   rate_per_minute=6000, rate_gates=(1, 2, 4), rate_measure_s=45,
                   rush_visitors=50_000, rush_arrival_s=60, rush_duration_s=120,
                   rush_rate_per_minute=1500, rush_gates=2, rush_workers=2,
                   leave_share=0.1, backend_connections=32, backend_days=70,
                   scale_population=500_000,
                   scale_rate_per_minute=3000,
                   scale_join_cap_s=420, scale_status_s=8,
                   scale_connections=(16, 32, 64, 128, 256))


# --- helpers ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


async def admin_room(session: aiohttp.ClientSession, gate: Proc, room: str) -> dict[str, Any]:
    async with session.get(f"{gate.admin_url}/admin/rooms/{room}",
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return body


async def join_tickets(gate: Proc, count: int, first_visitor: int = 100_000,
                       rooms: Sequence[str] = ()) -> list[str]:
    """Tickets issued by the gate itself, for the status-poll load; with `rooms`, taken in
    turn in each of them (`{"room": name}` in the join's body)."""
    tickets: list[str] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def one(n: int) -> None:
            headers = {"X-Forwarded-For": visitor_address(first_visitor + n)}
            body = {"room": rooms[n % len(rooms)]} if rooms else None
            async with session.post(f"{gate.url}/queue/api/join", headers=headers,
                                    json=body) as response:
                answer = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"join answered {response.status}: {answer}")
                tickets.append(answer["ticket"])

        for start in range(0, count, 50):
            await asyncio.gather(*(one(n) for n in range(start, min(start + 50, count))))
    return tickets


def admin_call(gate: Proc, room: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (or PATCH with `changes`) /admin/rooms/{room} on a gate's admin port."""
    request = urllib.request.Request(  # noqa: S310 (a loopback URL we built)
        f"{gate.admin_url}/admin/rooms/{room}",
        data=None if changes is None else json.dumps(changes).encode(),
        method="GET" if changes is None else "PATCH",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        body: dict[str, Any] = json.loads(response.read())
        return body


_visitors_numbered = [10_000_000]


def next_visitor(block: int = 10_000_000) -> int:
    """The first number of a fresh block of visitor numbers (for distinct addresses)."""
    _visitors_numbered[0] += block
    return _visitors_numbered[0]


def join_until(gates: list[Proc], room: str, tickets: int, cap_s: float) -> wrkrun.WrkRun:
    """wrk joins through every gate until the room has issued `tickets` (or cap_s passed)."""
    # Each wrk numbers its visitors from its own offset, so every join has its own address.
    argvs = [wrkrun.command(g.url, "join.lua", duration_s=cap_s, connections=32,
                            script_args=[str(next_visitor())]) for g in gates]
    return wrkrun.run(argvs, timeout_s=cap_s + 30, stop_when=lambda: int(
        admin_call(gates[0], room)["tickets_issued"]) >= tickets)


def redis_info(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info("all")
        return info
    finally:
        client.close()


def command_calls(info: dict[str, Any]) -> dict[str, int]:
    return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in info.items()
            if key.startswith("cmdstat_")}


def wrk_one(url: str, script: str, cfg: Config, *, connections: int, duration_s: float,
            args: list[str] | None = None, cpus: str | None = None) -> wrkrun.WrkRun:
    argv = wrkrun.command(url, script, duration_s=duration_s, connections=connections,
                          script_args=args or [], cpus=cpus)
    return wrkrun.run([argv], timeout_s=duration_s + 30)


# --- phases -----------------------------------------------------------------------------


def phase_ceiling(st: Stack, cfg: Config, workdir: Path) -> dict[str, Any]:
    """Figure 1: one gate process against bare aiohttp handlers, interleaved repetitions."""
    log.info("ceiling: bare JSON, bare one-round-trip, gate status, gate join")
    bare_json = st.baseline("json", cpus=SERVER_CPU)
    bare_redis = st.baseline("redis", cpus=SERVER_CPU)
    gate = st.gate("gate-ceiling", "ceiling", rate_per_minute=60, backend_url=NO_BACKEND,
                   cpus=SERVER_CPU)
    # The first 500 places absorb the admissions of the whole phase (60 a minute), so every
    # status poll below is a waiting visitor's poll.
    asyncio.run(join_tickets(gate, 500, first_visitor=0))
    ticket_file = workdir / "tickets-ceiling.txt"
    ticket_file.write_text("\n".join(asyncio.run(join_tickets(gate, 2000, 1000))) + "\n")
    cases = {
        "bare_json": (bare_json.url + "/queue/api/status", "get.lua", []),
        "bare_redis": (bare_redis.url + "/queue/api/join", "get.lua", []),
        "gate_status": (gate.url, "status.lua", [str(ticket_file)]),
        "gate_join": (gate.url, "join.lua", []),
    }
    servers = {"bare_json": bare_json, "bare_redis": bare_redis, "gate_status": gate,
               "gate_join": gate}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    # Warm up once (imports, first connections), then repeat in interleaved order.
    for url, script, args in cases.values():
        wrk_one(url, script, cfg, connections=cfg.ceiling_connections, duration_s=1,
                args=args or [str(next_visitor())], cpus=LOAD_CPU)
    for rep in range(cfg.ceiling_reps):
        for name, (url, script, args) in cases.items():
            if script == "join.lua":
                args = [str(next_visitor())]  # fresh visitors (and addresses) every run
            server_cpu = servers[name].cpu_seconds()
            run = wrk_one(url, script, cfg, connections=cfg.ceiling_connections,
                          duration_s=cfg.ceiling_s, args=args, cpus=LOAD_CPU)
            server_cpu = servers[name].cpu_seconds() - server_cpu
            runs[name].append({"rps": run.rps, "p50_ms": run.p50_ms, "p99_ms": run.p99_ms,
                               "errors": run.errors, "wrk_cpu_s": run.cpu_s,
                               "server_cpu_s": server_cpu, "wall_s": run.wall_s})
            log.info("ceiling rep %d %s: %.0f req/s, p99 %.1f ms, errors %d", rep, name,
                     run.rps, run.p99_ms, run.errors)
    for proc in (bare_json, bare_redis, gate):
        st.stop(proc)
    status_ratios = [s["rps"] / b["rps"] for s, b in zip(runs["gate_status"], runs["bare_json"],
                                                          strict=True)]
    join_ratios = [s["rps"] / b["rps"] for s, b in zip(runs["gate_join"], runs["bare_redis"],
                                                        strict=True)]
    medians = {name: statistics.median(r["rps"] for r in rs) for name, rs in runs.items()}
    return {
        "runs": runs,
        "median_rps": medians,
        "median_p99_ms": {name: statistics.median(r["p99_ms"] for r in rs)
                          for name, rs in runs.items()},
        "status_ratio_median": statistics.median(status_ratios),
        "join_ratio_median": statistics.median(join_ratios),
        "status_ratios": status_ratios,
        "join_ratios": join_ratios,
        "wrk_cpu_share": statistics.median(r["wrk_cpu_s"] / r["wall_s"]
                                           for rs in runs.values() for r in rs),
        "connections": cfg.ceiling_connections,
    }


def regression_slope(points: list[tuple[float, float]]) -> float:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def phase_rate(st: Stack, cfg: Config) -> dict[str, Any]:
    """Figure 4: admitted per minute against the configured rate, 1/2/4 gate processes."""
    results: dict[str, Any] = {}
    for count in cfg.rate_gates:
        room = f"rate{count}"
        # The room starts paused, so the backlog is built before anyone is admitted; then
        # it opens. Nobody collects a pass: the frontier alone moves, at the rate every
        # gate's ticks add up to.
        gates = [st.gate(f"gate-{room}-{i}", room, rate_per_minute=cfg.rate_per_minute,
                         backend_url=NO_BACKEND, extra_env={"QUEUE_GATE_MODE": "paused"})
                 for i in range(count)]
        backlog = int(cfg.rate_per_minute * (cfg.rate_measure_s + 5) / 60 * 1.2)
        join_until(gates, room, backlog, cap_s=60)
        admin_call(gates[0], room, {"mode": "queue"})
        time.sleep(2)  # every gate has ticked under the new mode

        async def sample(gates: list[Proc] = gates, room: str = room) -> list[dict[str, Any]]:
            samples = []
            async with aiohttp.ClientSession() as session:
                end = time.monotonic() + cfg.rate_measure_s
                while time.monotonic() < end:
                    before = time.monotonic()
                    doc = await admin_room(session, gates[0], room)
                    after = time.monotonic()
                    samples.append({"t": (before + after) / 2, "admitted": doc["admitted"],
                                    "waiting": doc["waiting"]})
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - before)))
            return samples

        samples = asyncio.run(sample())
        points = [(s["t"] - samples[0]["t"], float(s["admitted"])) for s in samples]
        per_minute = regression_slope(points) * 60
        first, last = samples[0], samples[-1]
        endpoints = (last["admitted"] - first["admitted"]) * 60 / (last["t"] - first["t"])
        results[str(count)] = {
            "configured": cfg.rate_per_minute,
            "measured_per_minute": per_minute,
            "error_pct": (per_minute / cfg.rate_per_minute - 1) * 100,
            "endpoints_per_minute": endpoints,
            "interval_s": last["t"] - first["t"],
            "min_waiting": min(s["waiting"] for s in samples),
            "samples": len(samples),
        }
        log.info("rate with %d gate(s): %.1f/min against %d (%.2f%%), min backlog %d", count,
                 per_minute, cfg.rate_per_minute, results[str(count)]["error_pct"],
                 results[str(count)]["min_waiting"])
        for gate in gates:
            st.stop(gate)
    return results


def run_rush(spec: RushSpec, workdir: Path, name: str) -> list[dict[str, Any]]:
    spec_file = workdir / f"{name}-spec.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    procs = []
    for worker in range(spec.workers):
        out = workdir / f"{name}-worker{worker}.json"
        logfile = (workdir / f"{name}-worker{worker}.log").open("wb")
        procs.append((out, subprocess.Popen(
            [sys.executable, "-m", "bench.rush", "--spec", str(spec_file), "--worker",
             str(worker), "--out", str(out)], stdout=logfile, stderr=subprocess.STDOUT,
            cwd=ROOT)))
        logfile.close()
    results = []
    for out, proc in procs:
        proc.wait(timeout=spec.duration_s + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"rush worker failed, see {out.with_suffix('.log')}")
        results.append(json.loads(out.read_text()))
    return results


IN_FLIGHT = "booking_http_requests_in_flight"


async def backend_in_flight(session: aiohttp.ClientSession, backend: Proc) -> float:
    """The backend's requests in flight right now (its own gauge, one metric only)."""
    async with session.get(f"{backend.admin_url}/metrics",
                           params={"name[]": IN_FLIGHT}) as response:
        for line in (await response.text()).splitlines():
            if line.startswith(IN_FLIGHT + " "):
                return float(line.split()[1])
    return float("nan")


async def backend_counts(session: aiohttp.ClientSession, backend: Proc) -> dict[str, int]:
    """Slot units and bookings, deployment-wide, from the backend's admin API."""
    async with session.get(f"{backend.admin_url}/admin/stats",
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as response:
        response.raise_for_status()
        counts: dict[str, int] = (await response.json())["counts"]
        return counts


async def probe_backend(backend: Proc, until: asyncio.Future[Any],
                        every_s: float = 0.2) -> dict[str, Any]:
    """Sample the backend's requests in flight five times a second while `until` runs;
    then its counts and the CPU it used meanwhile."""
    series: list[tuple[float, float]] = []
    started = time.time()
    cpu_before = backend.cpu_seconds()
    async with aiohttp.ClientSession() as session:
        while not until.done():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                series.append((round(time.time() - started, 2),
                               await backend_in_flight(session, backend)))
            await asyncio.wait([until], timeout=every_s)
        counts = await backend_counts(session, backend)
    values = [v for _, v in series]
    return {"peak_in_flight": max(values, default=0.0),
            "median_in_flight": statistics.median(values) if values else 0.0,
            "samples": len(values), "counts": counts, "in_flight": series,
            "cpu_s": backend.cpu_seconds() - cpu_before}


def merge_workers(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"errors": {}}
    for key in ("joins", "status_polls", "admitted", "left", "bookings_ok", "hold_conflicts",
                "still_waiting", "cpu_s"):
        merged[key] = sum(r[key] for r in results)
    for key in ("join_lat", "status_lat", "book_lat", "backend_lat", "arrivals", "admissions",
                "order"):
        merged[key] = [item for r in results for item in r[key]]
    for r in results:
        for kind, n in r["errors"].items():
            merged["errors"][kind] = merged["errors"].get(kind, 0) + n
    merged["wall_s"] = max(r["wall_s"] for r in results)
    return merged


def order_violations(order: list[list[float]], gate: int | None) -> int:
    """Admitted visitors seen admitted before an earlier ticket was last told to wait.

    A violation is certain only if the earlier ticket's "waiting" request was *sent* after
    the later ticket's "admitted" answer was *received*; that is what is counted.
    """
    rows = sorted((r for r in order if gate is None or int(r[1]) == gate), key=lambda r: r[0])
    violations = 0
    latest_waiting = -1.0
    for number, _, last_waiting, admitted_at in rows:
        del number
        if admitted_at >= 0 and latest_waiting > admitted_at:
            violations += 1
        latest_waiting = max(latest_waiting, last_waiting)
    return violations


def start_backend(st: Stack, cfg: Config, room: str, sms: Proc, database_url: str) -> Proc:
    started = time.monotonic()
    backend = st.booking_backend(database_url, room, f"{sms.url}/messages",
                                 days=cfg.backend_days)
    log.info("booking backend up with the demo's slots in %.1f s", time.monotonic() - started)
    return backend


def phase_rush(st: Stack, cfg: Config, workdir: Path, redis_url: str) -> dict[str, Any]:
    """Figures 2, 3, 5, 6, 7: the rush through the gate, then straight at the backend."""
    room = "rush"
    sms = st.sms_gateway()  # one per run: the direct run's visitors have the same numbers
    # The backend books on a private PostgreSQL (the gate's Redis figures stay the gate's),
    # a fresh one for each run so that both runs start with the same free appointments.
    with private_postgres() as backend_db:
        backend = start_backend(st, cfg, room, sms, backend_db)
        # Configured as docs/operations.md tells operators: the gates together open no more
        # connections to the backend than it serves well at once; the rest wait in the gate.
        per_gate = str(max(cfg.backend_connections // cfg.rush_gates, 1))
        gates = [st.gate(f"gate-rush-{i}", room, rate_per_minute=cfg.rush_rate_per_minute,
                         backend_url=backend.url,
                         extra_env={"QUEUE_GATE_BACKEND_MAX_CONNECTIONS": per_gate})
                 for i in range(cfg.rush_gates)]
        info_before = redis_info(redis_url)
        gate_cpu_before = [g.cpu_seconds() for g in gates]
        redis_pid = int(info_before["process_id"])
        redis_cpu_before = cpu_seconds(redis_pid)
        spec = RushSpec(gates=[g.url for g in gates], backend=backend.url, sms=sms.url,
                        visitors=cfg.rush_visitors, arrival_s=cfg.rush_arrival_s,
                        duration_s=cfg.rush_duration_s, start_at=time.time() + 3,
                        leave_share=cfg.leave_share, workers=cfg.rush_workers, seed=2021,
                        room=room, grace_s=2.0 if cfg.quick else 15.0)
        log.info("rush: %d visitors in %.0f s through %d gate(s), rate %d/min, for %.0f s",
                 spec.visitors, spec.arrival_s, len(gates), cfg.rush_rate_per_minute,
                 spec.duration_s)

        async def sampled() -> tuple[list[dict[str, Any]], dict[str, Any],
                                     list[dict[str, Any]]]:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(None, run_rush, spec, workdir, "rush")
            probe = asyncio.create_task(probe_backend(backend, task))
            samples = []
            async with aiohttp.ClientSession() as session:
                while not task.done():
                    try:
                        doc = await admin_room(session, gates[0], room)
                        samples.append({"t": round(time.time() - spec.start_at, 2),
                                        "waiting": doc["waiting"],
                                        "admitted": doc["admitted"],
                                        "tickets": doc["tickets_issued"],
                                        "passes_active": doc["passes_active"]})
                    except aiohttp.ClientError as exc:
                        log.warning("admin sample failed: %s", exc)
                    await asyncio.wait([task], timeout=1.0)
            return samples, await probe, await task

        samples, backend_with, worker_results = asyncio.run(sampled())
        info_after = redis_info(redis_url)
        gate_cpu = sum(g.cpu_seconds() for g in gates) - sum(gate_cpu_before)
        redis_cpu = cpu_seconds(redis_pid) - redis_cpu_before
        for gate in gates:
            st.stop(gate)
        st.stop(backend)
    rush = merge_workers(worker_results)

    log.info("direct: the same rush straight at the backend")
    st.stop(sms)
    sms = st.sms_gateway()
    with private_postgres() as backend_db:
        backend = start_backend(st, cfg, room, sms, backend_db)
        direct_spec = dataclasses.replace(spec, gates=[], backend=backend.url, sms=sms.url,
                                          start_at=time.time() + 3, leave_share=0.0,
                                          direct=True)

        async def direct() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            task = asyncio.get_running_loop().run_in_executor(None, run_rush, direct_spec,
                                                              workdir, "direct")
            probe = asyncio.create_task(probe_backend(backend, task))
            return await probe, await task

        backend_direct, direct_results = asyncio.run(direct())
        log.info("direct: done")
        # Thousands of its requests still wait for Redis: no need to let them finish.
        st.stop(backend, wait_s=2.0)
    st.stop(sms)
    direct_merged = merge_workers(direct_results)

    calls_before, calls_after = command_calls(info_before), command_calls(info_after)
    delta = {cmd: calls_after.get(cmd, 0) - calls_before.get(cmd, 0) for cmd in calls_after}
    delta = {cmd: n for cmd, n in delta.items() if n > 0 and cmd != "info"}
    visitors = max(rush["joins"], 1)
    order = rush.pop("order")
    join_ms = [lat for _, lat in rush["join_lat"]]
    status_ms = [lat for _, lat in rush["status_lat"]]
    return {
        "spec": asdict(spec),
        "samples": samples,
        "joins": rush["joins"], "status_polls": rush["status_polls"],
        "admitted": rush["admitted"], "left": rush["left"],
        "still_waiting": rush["still_waiting"], "bookings_ok": rush["bookings_ok"],
        "errors": rush["errors"], "error_total": sum(rush["errors"].values()),
        "join_p50_ms": percentile(join_ms, 50), "join_p99_ms": percentile(join_ms, 99),
        "status_p50_ms": percentile(status_ms, 50), "status_p99_ms": percentile(status_ms, 99),
        "book_p50_ms": percentile([lat for _, lat in rush["book_lat"]], 50),
        "backend_p50_ms": percentile([lat for _, lat in rush["backend_lat"]], 50),
        "backend_p99_ms": percentile([lat for _, lat in rush["backend_lat"]], 99),
        "hold_conflicts": rush["hold_conflicts"],
        "backend_connections": cfg.backend_connections,
        "peak_waiting": max((s["waiting"] for s in samples), default=0),
        "order_violations_same_gate": sum(order_violations(order, g)
                                          for g in range(cfg.rush_gates)),
        "order_violations_any_gate": order_violations(order, None),
        "order_checked": sum(1 for r in order if r[3] >= 0),
        "generator_cpu_s": rush["cpu_s"], "generator_wall_s": rush["wall_s"],
        "gate_cpu_s": gate_cpu, "redis_cpu_s": redis_cpu,
        "backend_with_gate": backend_with, "backend_direct": backend_direct,
        "direct": {"bookings_ok": direct_merged["bookings_ok"],
                   "errors": direct_merged["errors"],
                   "hold_conflicts": direct_merged["hold_conflicts"],
                   "backend_p50_ms": percentile(
                       [lat for _, lat in direct_merged["backend_lat"]], 50),
                   "backend_p99_ms": percentile(
                       [lat for _, lat in direct_merged["backend_lat"]], 99),
                   "error_total": sum(direct_merged["errors"].values()),
                   "generator_cpu_s": direct_merged["cpu_s"]},
        "redis_calls": delta,
        "redis_calls_per_visitor": sum(delta.values()) / visitors,
        "redis_scripts_per_visitor": delta.get("evalsha", 0) / visitors,
        "series": {"arrivals": rush["arrivals"], "admissions": rush["admissions"],
                   "join_lat": rush["join_lat"], "status_lat": rush["status_lat"],
                   "backend_lat": rush["backend_lat"],
                   "direct_backend_lat": direct_merged["backend_lat"]},
    }


def phase_scale(st: Stack, cfg: Config, workdir: Path) -> dict[str, Any]:
    """Figures 7 (memory) and 8: hold a large waiting population and measure polls/s.
    On a Redis of its own: what the earlier phases left there expires in the meantime
    (the rush's join counters, one hash per window, all at once) and would be subtracted."""
    with private_redis() as redis_url:
        return measure_scale(st, cfg, workdir, redis_url)


def measure_scale(st: Stack, cfg: Config, workdir: Path, redis_url: str) -> dict[str, Any]:
    room = "scale"
    rate = cfg.scale_rate_per_minute
    gates = [st.gate(f"gate-scale-{i}", room, rate_per_minute=rate, backend_url=NO_BACKEND,
                     redis_url=redis_url) for i in range(cfg.rush_gates)]
    # A short warm-up opens the gates' Redis connection pools first, so the memory delta
    # below is the waiting visitors', not the connections' buffers.
    join_until(gates, room, 2000, cap_s=5)
    info_before = redis_info(redis_url)
    # The memory delta below is the measured joins' only: the warm-up's are in info_before.
    waiting_before = int(admin_call(gates[0], room)["waiting"])
    issued_before = int(admin_call(gates[0], room)["tickets_issued"])
    log.info("scale: %d joins through %d gates", cfg.scale_population, len(gates))
    joins = join_until(gates, room, issued_before + cfg.scale_population,
                       cfg.scale_join_cap_s)
    tickets = asyncio.run(join_tickets(gates[0], 2000))
    ticket_file = workdir / "tickets-scale.txt"
    ticket_file.write_text("\n".join(tickets) + "\n")

    async def room_doc() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            return await admin_room(session, gates[0], room)

    doc = asyncio.run(room_doc())
    info_after = redis_info(redis_url)
    waiting = int(doc["waiting"])
    joined = int(doc["tickets_issued"])
    memory_delta = int(info_after["used_memory"]) - int(info_before["used_memory"])
    dataset_delta = (int(info_after["used_memory"]) - int(info_after["mem_clients_normal"])) - (
        int(info_before["used_memory"]) - int(info_before["mem_clients_normal"]))
    runs = []
    for connections in cfg.scale_connections:
        per = max(connections // len(gates), 1)
        cpu_before = sum(g.cpu_seconds() for g in gates)
        run = wrkrun.run([wrkrun.command(g.url, "status.lua", duration_s=cfg.scale_status_s,
                                         connections=per, script_args=[str(ticket_file)])
                          for g in gates], timeout_s=cfg.scale_status_s + 30)
        gate_cpu = sum(g.cpu_seconds() for g in gates) - cpu_before
        runs.append({"connections": per * len(gates), "rps": run.rps, "p50_ms": run.p50_ms,
                     "p99_ms": run.p99_ms, "errors": run.errors,
                     "wrk_cpu_share": run.cpu_s / run.wall_s,
                     "gate_cpu_share": gate_cpu / run.wall_s})
        log.info("scale: %d connections, %.0f polls/s, p99 %.1f ms, errors %d", connections,
                 run.rps, run.p99_ms, run.errors)
    for gate in gates:
        st.stop(gate)
    good = [r for r in runs if r["errors"] == 0 and r["p99_ms"] < 100]
    capacity = max((r["rps"] for r in good), default=0.0)
    return {
        "gates": len(gates),
        "joined": joined,
        "join_rps": joins.rps, "join_errors": joins.errors, "join_p99_ms": joins.p99_ms,
        "waiting": waiting,
        "memory_delta_bytes": memory_delta,
        "memory_delta_without_clients_bytes": dataset_delta,
        "bytes_per_waiting": memory_delta / max(waiting - waiting_before, 1),
        "bytes_per_waiting_without_clients": dataset_delta / max(waiting - waiting_before, 1),
        "status_runs": runs,
        "sustained_polls_per_s": capacity,
        "rate_per_minute": rate,
        "polls_needed_for_waiting": model.polls_per_second(waiting, rate),
        "polls_needed_for_500k": model.polls_per_second(500_000, rate),
        "population_sustained": model.population_for(capacity, rate),
    }


def gate_version(gate_src: Path) -> str:
    """Which gate was measured: the commit, and whether queue_gate/ had local changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if gate_src.resolve() != ROOT:
        return f"snapshot in {gate_src} (checkout at {commit})"
    dirty = git("status", "--porcelain", "--", "queue_gate")
    return f"{commit}{' with uncommitted changes in queue_gate/' if dirty else ''}"


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: under a minute")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--no-docs", action="store_true",
                        help="do not rewrite docs/ (the quick mode never does)")
    parser.add_argument("--gate-src", type=Path, default=ROOT,
                        help="directory holding the queue_gate package to benchmark "
                        "(default: this checkout)")
    parser.add_argument("--report-from", type=Path, default=None, metavar="DIR",
                        help="run nothing: redraw the plots and rewrite docs/ from "
                        "DIR/results.json of an earlier run")
    parser.add_argument("--rush-visitors", type=int, default=None,
                        help="visitors in the rush (default 50,000; quick 1,500)")
    parser.add_argument("--rush-arrival-s", type=float, default=None,
                        help="the rush arrives within this many seconds (default 60)")
    parser.add_argument("--phases", default="ceiling,rate,rush,scale",
                        help="comma-separated subset of ceiling,rate,rush,scale")
    args = parser.parse_args(argv)
    if args.report_from is not None:
        from bench import report

        earlier: dict[str, Any] = json.loads((args.report_from / "results.json").read_text())
        report.plots(earlier, args.report_from)
        report.write_docs(earlier, args.report_from, ROOT)
        sys.stdout.write(report.summary_table(earlier))
        return
    cfg = Config.for_mode(args.quick)
    if args.rush_visitors is not None:
        cfg = dataclasses.replace(cfg, rush_visitors=args.rush_visitors)
    if args.rush_arrival_s is not None:
        cfg = dataclasses.replace(cfg, rush_arrival_s=args.rush_arrival_s,
                                  rush_duration_s=max(cfg.rush_duration_s,
                                                      args.rush_arrival_s + 30))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    workdir = args.out or ROOT / "bench" / "results" / (stamp + ("-quick" if cfg.quick else ""))
    workdir.mkdir(parents=True, exist_ok=True)
    phases = set(args.phases.split(","))
    command = " ".join(["python -m bench.launch", *(argv if argv is not None else sys.argv[1:])])
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": command, "started_utc": stamp, "config": asdict(cfg),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": os.getloadavg()},
        "backend": "booking_backend (python -m booking_backend.main, demo centres)",
    }
    results["gate"] = gate_version(args.gate_src)
    with private_redis() as redis_url, \
            stack(workdir / "logs", redis_url, args.gate_src) as st:
        if "ceiling" in phases:
            results["ceiling"] = phase_ceiling(st, cfg, workdir)
        if "rate" in phases:
            results["rate"] = phase_rate(st, cfg)
        if "rush" in phases:
            results["rush"] = phase_rush(st, cfg, workdir, redis_url)
        if "scale" in phases:
            results["scale"] = phase_scale(st, cfg, workdir)
    results["wall_s"] = time.monotonic() - started
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    from bench import report  # matplotlib is imported only once results exist

    summary = report.summary_table(results)
    report.plots(results, workdir)
    if not cfg.quick and not args.no_docs:
        report.write_docs(results, workdir, ROOT)
    # The harness's own report output: the figures table on stdout.
    sys.stdout.write(summary + f"\nresults in {workdir} (wall {results['wall_s']:.0f} s)\n")


if __name__ == "__main__":
    main()
