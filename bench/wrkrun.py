"""Running wrk with our Lua scripts and reading its one-line JSON report."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_DIR = Path(__file__).parent / "wrk"
SIGINT_AFTER_S = 1.0


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: int  # connect + read + write + timeout + non-2xx/3xx
    non_2xx: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


@dataclass(frozen=True)
class WrkRun:
    results: list[WrkResult]
    cpu_s: float  # CPU the wrk processes used (the load generator's own cost)
    wall_s: float

    @property
    def rps(self) -> float:
        return sum(r.rps for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def p50_ms(self) -> float:
        return max(r.p50_ms for r in self.results)

    @property
    def p99_ms(self) -> float:
        return max(r.p99_ms for r in self.results)


def parse(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("WRKJSON "):
            raw = json.loads(line[len("WRKJSON "):])
            errors = sum(int(raw[k]) for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=int(raw["requests"]), duration_s=raw["duration_us"] / 1e6,
                errors=errors, non_2xx=int(raw["status"]), timeouts=int(raw["timeout"]),
                p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000, max_ms=raw["max_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no report:\n{output[-2000:]}")


def command(url: str, script: str, *, duration_s: float, connections: int, threads: int = 1,
            script_args: Sequence[str] = (), cpus: str | None = None) -> list[str]:
    seconds = max(round(duration_s), 1)  # wrk takes whole seconds only
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "5s", "-s", str(WRK_DIR / script), url]
    if script_args:
        argv += ["--", *script_args]
    return ["taskset", "-c", cpus, *argv] if cpus is not None else argv


def run(commands: Sequence[Sequence[str]], *, timeout_s: float,
        stop_when: Callable[[], bool] | None = None) -> WrkRun:
    """Run wrk commands side by side (one per gate process) and collect their reports.

    `stop_when` is asked twice a second; once it says yes, wrk is interrupted (SIGINT makes
    it stop and print its report), which bounds a run by count as well as by -d.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)}
    procs = [subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env) for argv in commands]
    if stop_when is not None:
        # wrk ignores SIGINT until its threads run and only then takes it as "stop and
        # report"; before that (the dynamic loader, the first instructions) SIGINT ends it
        # with nothing printed. So it is never interrupted in its first second.
        time.sleep(SIGINT_AFTER_S)
        while any(proc.poll() is None for proc in procs) and \
                time.monotonic() - started < timeout_s:
            if stop_when():
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.5)
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout_s)
        outputs.append(out.decode(errors="replace"))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for proc, text in zip(procs, outputs, strict=True):
        if proc.returncode < 0:
            raise RuntimeError(f"wrk ended by signal {-proc.returncode}: {proc.args!r}\n"
                               f"{text[-2000:]}")
    return WrkRun([parse(out) for out in outputs], cpu, wall)
