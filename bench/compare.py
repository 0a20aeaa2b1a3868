"""Ceiling of gate variants side by side: `python -m bench.compare DIR [DIR ...]`.

Each DIR holds a `queue_gate/` package (e.g. `git archive HEAD queue_gate | tar -x -C DIR`,
then change it). Every variant and the two bare baselines run as one process pinned to
core 1, wrk on core 0, in interleaved rounds; prints median req/s for status polls and
joins and the per-round ratios against the bare handlers. For checking a gate change
before it is made in the repository.

Requests per second swing by tens of percent when anything else runs on the machine; the
server process's own CPU time per request (from /proc) is disturbed far less, so the table
gives both: compare variants by the CPU column when the machine is not quiet.

`measure` and `gate_cases` are this interleaving for any set of servers
(`bench.cluster_ceiling` runs one gate on a single Redis against one on a cluster with them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from bench import wrkrun
from bench.launch import LOAD_CPU, NO_BACKEND, SERVER_CPU, join_tickets, next_visitor
from bench.procs import Proc, stack
from devtools.servers import private_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Case:
    """One load of the side-by-side: wrk's `script` against `server`, with `args` (None: a
    fresh block of visitor numbers every run, for joins). `meters` are other processes' CPU
    seconds (e.g. a Redis process) charged per request beside the server's own;
    `alongside` is entered around every run of wrk (e.g. a probe timing something under
    the load)."""

    server: Proc
    script: str
    args: list[str] | None
    meters: Mapping[str, Callable[[], float]] = field(default_factory=dict)
    alongside: Callable[[], AbstractContextManager[object]] = nullcontext


@dataclass
class Measured:
    """Per counted round: req/s, errors, the server's and each meter's CPU µs per request."""

    rps: list[float] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    meter_us: dict[str, list[float]] = field(default_factory=dict)


def gate_cases(gate: Proc, workdir: Path, tag: str, *, tickets: int = 2000, ahead: int = 500,
               meters: Mapping[str, Callable[[], float]] | None = None) -> dict[str, Case]:
    """`tag:status` (polls of `tickets` waiting visitors) and `tag:join` against `gate`.

    The first `ahead` places absorb the admissions of the whole run (at a slow rate), so
    every poll is a waiting visitor's."""
    asyncio.run(join_tickets(gate, ahead, next_visitor()))
    ticket_file = workdir / f"tickets-{tag}.txt"
    ticket_file.write_text("\n".join(asyncio.run(join_tickets(gate, tickets, next_visitor())))
                           + "\n")
    return {f"{tag}:status": Case(gate, "status.lua", [str(ticket_file)], meters or {}),
            f"{tag}:join": Case(gate, "join.lua", None, meters or {})}


def measure(cases: Mapping[str, Case], *, rounds: int, seconds: float, connections: int = 64,
            warm_up: bool = True) -> dict[str, Measured]:
    """Every case in turn, `rounds` times (interleaved: A B A B ...), wrk on LOAD_CPU; a first
    round of 1 s each warms up (imports, first connections) and is not counted."""
    measured = {name: Measured(meter_us={meter: [] for meter in case.meters})
                for name, case in cases.items()}
    for round_ in range(0 if warm_up else 1, rounds + 1):
        for name, case in cases.items():
            url = case.server.url + ("/x" if case.script == "get.lua" else "")
            fresh = [str(next_visitor())] if case.args is None else case.args
            argv = wrkrun.command(url, case.script, duration_s=seconds if round_ else 1,
                                  connections=connections, cpus=LOAD_CPU, script_args=fresh)
            cpu_before = case.server.cpu_seconds()
            meters_before = {meter: read() for meter, read in case.meters.items()}
            with case.alongside():
                run = wrkrun.run([argv], timeout_s=seconds + 30)
            cpu_used = case.server.cpu_seconds() - cpu_before
            if not round_:
                continue
            requests = sum(result.requests for result in run.results)
            per_request = 1e6 / requests if requests else math.nan
            found = measured[name]
            found.rps.append(run.rps)
            found.errors.append(run.errors)
            found.cpu_us.append(cpu_used * per_request)
            for meter, read in case.meters.items():
                found.meter_us[meter].append((read() - meters_before[meter]) * per_request)
            log.info("round %d %s: %.0f req/s, %.1f µs CPU/req, %d errors", round_, name,
                     run.rps, cpu_used * per_request, run.errors)
    return measured


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--uvloop-baselines", action="store_true",
                        help="run the bare handlers on uvloop too")
    args = parser.parse_args(argv)
    workdir = Path("bench/results/compare")
    workdir.mkdir(parents=True, exist_ok=True)
    with private_redis() as redis_url, stack(workdir / "logs", redis_url) as st:
        cases: dict[str, Case] = {
            "bare_json": Case(st.baseline("json", cpus=SERVER_CPU,
                                          uvloop=args.uvloop_baselines), "get.lua", []),
            "bare_redis": Case(st.baseline("redis", cpus=SERVER_CPU,
                                           uvloop=args.uvloop_baselines), "get.lua", []),
        }
        for index, variant in enumerate(args.variants):
            st.gate_src = variant.resolve()
            gate = st.gate(f"gate-variant{index}", f"compare{index}", rate_per_minute=60,
                           backend_url=NO_BACKEND, cpus=SERVER_CPU)
            cases |= gate_cases(gate, workdir, str(index))
        found = measure(cases, rounds=args.rounds, seconds=args.seconds)
    rps = {name: m.rps for name, m in found.items()}
    cpu_us = {name: m.cpu_us for name, m in found.items()}
    lines = ["| variant | status req/s | vs bare JSON | status CPU µs/req | join req/s | "
             "vs bare + 1 RTT | join CPU µs/req |",
             "|---|---|---|---|---|---|---|",
             f"| bare handlers | {statistics.median(rps['bare_json']):.0f} | | "
             f"{statistics.median(cpu_us['bare_json']):.1f} | "
             f"{statistics.median(rps['bare_redis']):.0f} | | "
             f"{statistics.median(cpu_us['bare_redis']):.1f} |"]
    for index, variant in enumerate(args.variants):
        status, join = rps[f"{index}:status"], rps[f"{index}:join"]
        status_ratio = statistics.median(a / b for a, b in zip(status, rps["bare_json"],
                                                                strict=True))
        join_ratio = statistics.median(a / b for a, b in zip(join, rps["bare_redis"],
                                                              strict=True))
        lines.append(f"| {variant} | {statistics.median(status):.0f} | {status_ratio:.0%} | "
                     f"{statistics.median(cpu_us[f'{index}:status']):.1f} | "
                     f"{statistics.median(join):.0f} | {join_ratio:.0%} | "
                     f"{statistics.median(cpu_us[f'{index}:join']):.1f} |")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
