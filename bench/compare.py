"""Ceiling of gate variants side by side: `python -m bench.compare DIR [DIR ...]`.

Each DIR holds a `queue_gate/` package (e.g. `git archive HEAD queue_gate | tar -x -C DIR`,
then change it). Every variant and the two bare baselines run as one process pinned to
core 1, wrk on core 0, in interleaved rounds; prints median req/s for status polls and
joins and the per-round ratios against the bare handlers. For checking a gate change
before it is made in the repository.

Requests per second swing by tens of percent when anything else runs on the machine; the
server process's own CPU time per request (from /proc) is disturbed far less, so the table
gives both: compare variants by the CPU column when the machine is not quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
from pathlib import Path

from bench import wrkrun
from bench.launch import LOAD_CPU, NO_BACKEND, SERVER_CPU, join_tickets, next_visitor
from bench.procs import Proc, stack
from devtools.servers import private_redis

log = logging.getLogger(__name__)


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
        cases: dict[str, tuple[Proc, str, list[str] | None]] = {
            "bare_json": (st.baseline("json", cpus=SERVER_CPU, uvloop=args.uvloop_baselines),
                          "get.lua", []),
            "bare_redis": (st.baseline("redis", cpus=SERVER_CPU, uvloop=args.uvloop_baselines),
                           "get.lua", []),
        }
        for index, variant in enumerate(args.variants):
            st.gate_src = variant.resolve()
            gate = st.gate(f"gate-variant{index}", f"compare{index}", rate_per_minute=60,
                           backend_url=NO_BACKEND, cpus=SERVER_CPU)
            asyncio.run(join_tickets(gate, 500, next_visitor()))
            tickets = workdir / f"tickets-{index}.txt"
            tickets.write_text("\n".join(asyncio.run(join_tickets(gate, 2000, next_visitor())))
                               + "\n")
            cases[f"{index}:status"] = (gate, "status.lua", [str(tickets)])
            cases[f"{index}:join"] = (gate, "join.lua", None)  # fresh visitors every run
        rps: dict[str, list[float]] = {name: [] for name in cases}
        cpu_us: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(args.rounds + 1):  # round 0 warms up and is not counted
            for name, (proc, script, script_args) in cases.items():
                url = proc.url + ("/x" if script == "get.lua" else "")
                fresh = [str(next_visitor())] if script == "join.lua" else []
                argv_ = wrkrun.command(url, script, duration_s=args.seconds if round_ else 1,
                                       connections=64, cpus=LOAD_CPU,
                                       script_args=script_args or fresh)
                cpu_before = proc.cpu_seconds()
                run = wrkrun.run([argv_], timeout_s=args.seconds + 30)
                cpu_used = proc.cpu_seconds() - cpu_before
                if round_:
                    rps[name].append(run.rps)
                    requests = sum(result.requests for result in run.results)
                    cpu_us[name].append(cpu_used / requests * 1e6 if requests else math.nan)
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
