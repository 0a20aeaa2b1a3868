"""Status polls with 20 rooms configured against 1 room, side by side (docs/benchmarks.md
"Many rooms per process"): `python -m bench.rooms [--rooms 20] [--rounds 5] [--seconds 8]`.

Two gate processes (`python -m queue_gate`, pinned to the same core, wrk on the other), each
on its own Redis database so their room registries stay apart: one serves its single room,
the other its environment's room plus `--rooms - 1` rooms created through
`PUT /admin/rooms/{room}`, each with a route of its own. The waiting visitors' tickets are
spread over every room of a gate (none admitted: rate 0), so a poll finds its room by its
ticket as it would in production. wrk polls `GET /queue/api/status` against one gate, then
the other, in interleaved rounds (a first round of 1 s each warms up); the figure is the
median of the per-round ratios of requests per second (the target is at least 95%), with
the gates' CPU time per request beside it (less disturbed by other load on the machine),
and each gate's CPU share without load (the ticker's own cost, which grows with the rooms
and not with the visitors).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.compare import Case, measure
from bench.launch import NO_BACKEND, SERVER_CPU, join_tickets, next_visitor
from bench.procs import ADMIN_TOKEN, Proc, stack
from devtools.servers import private_redis

log = logging.getLogger("bench.rooms")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


def put_room(gate: Proc, room: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 (a loopback URL we built)
        f"{gate.admin_url}/admin/rooms/{room}", data=json.dumps(body).encode(),
        method="PUT", headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status in (200, 201), response.status


def served_rooms(gate: Proc) -> int:
    with urllib.request.urlopen(f"{gate.url}/queue/healthz", timeout=10) as response:  # noqa: S310
        return len(json.loads(response.read())["rooms"])


async def join_spread(gate: Proc, rooms: list[str], count: int) -> list[str]:
    """`count` tickets, taken in turn in each of `rooms` (`{"room": name}`)."""
    return await join_tickets(gate, count, next_visitor(), rooms)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--idle-seconds", type=float, default=10,
                        help="how long each gate's CPU is measured without load")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, private_redis() as redis_url, \
            stack(Path(tmp) / "logs", redis_url) as running:
        base = redis_url.rsplit("/", 1)[0]
        single = running.gate("gate-1room", "solo", rate_per_minute=0, backend_url=NO_BACKEND,
                              cpus=SERVER_CPU, redis_url=f"{base}/1",
                              extra_env={"QUEUE_GATE_JOIN_LIMIT": "0"})
        many = running.gate("gate-rooms", "room00", rate_per_minute=0, backend_url=NO_BACKEND,
                            cpus=SERVER_CPU, redis_url=f"{base}/2",
                            extra_env={"QUEUE_GATE_JOIN_LIMIT": "0"})
        names = [f"room{i:02d}" for i in range(args.rooms)]
        for name in names[1:]:
            put_room(many, name, {"rate_per_minute": 0, "routes": [
                {"host": "*", "path": f"/{name}", "action": "queue"}]})
        deadline = time.monotonic() + 10
        while served_rooms(many) < args.rooms:
            if time.monotonic() > deadline:
                sys.exit(f"the gate serves {served_rooms(many)} rooms, not {args.rooms}")
            time.sleep(0.2)
        # The ticker's own cost, without load: CPU seconds per second of each gate idle.
        idle = {}
        for gate in (single, many):
            before, started = gate.cpu_seconds(), time.monotonic()
            time.sleep(args.idle_seconds)
            idle[gate.name] = (gate.cpu_seconds() - before) / (time.monotonic() - started)
        workdir = Path(tmp)
        cases: dict[str, Case] = {}
        for tag, gate, rooms in (("1 room", single, ["solo"]), (f"{args.rooms} rooms", many,
                                                                 names)):
            tickets = asyncio.run(join_spread(gate, rooms, args.tickets))
            ticket_file = workdir / f"tickets-{gate.name}.txt"
            ticket_file.write_text("\n".join(tickets) + "\n")
            cases[tag] = Case(gate, "status.lua", [str(ticket_file)])
        found = measure(cases, rounds=args.rounds, seconds=args.seconds)
    one, twenty = found["1 room"], found[f"{args.rooms} rooms"]
    ratios = [b / a for a, b in zip(one.rps, twenty.rps, strict=True)]
    results = {
        "rooms": args.rooms, "rounds": args.rounds, "seconds": args.seconds,
        "tickets": args.tickets,
        "one_room": {"rps_median": round(statistics.median(one.rps)),
                     "cpu_us_median": round(statistics.median(one.cpu_us), 1),
                     "rps": [round(r) for r in one.rps]},
        "many_rooms": {"rps_median": round(statistics.median(twenty.rps)),
                       "cpu_us_median": round(statistics.median(twenty.cpu_us), 1),
                       "rps": [round(r) for r in twenty.rps]},
        "ratio_median": round(statistics.median(ratios), 3),
        "cpu_ratio_median": round(statistics.median(
            a / b for a, b in zip(one.cpu_us, twenty.cpu_us, strict=True)), 3),
        "errors": sum(one.errors) + sum(twenty.errors),
        # Of one core, while no request arrives: the ticker (and the registry read).
        "idle_cpu_share_one_room": round(idle["gate-1room"], 4),
        "idle_cpu_share_many_rooms": round(idle["gate-rooms"], 4),
    }
    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
