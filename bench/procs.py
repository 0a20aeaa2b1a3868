"""The benchmark's stack of OS processes on loopback: gates, baselines, the booking backend
and the SMS stand-in, each a `devtools.processes.ManagedProcess` (the one launcher)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools.processes import HOST, ManagedProcess, free_port

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-not-for-production-0123456789abcdef"
ADMIN_TOKEN = "bench-admin-token"


def visitor_address(n: int) -> str:
    """Visitor n's own address, as a header value only (no packet is ever sent to it): the
    first 131,072 from 198.18.0.0/15, which RFC 2544 reserves for benchmarks, the rest one
    IPv6 /64 each from 2001:db8::/32, the documentation prefix."""
    if n < 1 << 17:
        return f"198.{18 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"
    return f"2001:db8:{(n >> 16) & 0xFFFF:x}:{n & 0xFFFF:x}::1"


@dataclass
class Proc:
    """A server of the stack: its process and the ports it listens on."""

    name: str
    process: ManagedProcess
    port: int
    admin_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds()

    def stop(self, wait_s: float = 10.0) -> None:
        """SIGTERM; SIGKILL if it has not gone after `wait_s` (an overloaded server may
        wait for its requests in flight)."""
        self.process.stop(wait_s)


@dataclass
class Stack:
    """Every process the benchmark started, stopped in reverse order on exit."""

    logdir: Path
    redis_url: str
    # Where gate processes import `queue_gate` from: this checkout, or a snapshot of it
    # (`--gate-src`) when the package is being edited while the benchmark runs.
    gate_src: Path = ROOT
    procs: list[Proc] = field(default_factory=list)

    def _start(self, name: str, argv: Sequence[str], port: int, *, admin_port: int = 0,
               env: Mapping[str, str] | None = None, cpus: str | None = None,
               cwd: Path = ROOT) -> Proc:
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        process = ManagedProcess.start(name, argv, log_path=self.logdir / f"{name}.log",
                                       env=env, cwd=cwd)
        proc = Proc(name, process, port, admin_port)
        self.procs.append(proc)
        process.wait_for_port(port)
        if admin_port:
            process.wait_for_port(admin_port)
        return proc

    def gate(self, name: str, room: str, *, rate_per_minute: int, backend_url: str,
             cpus: str | None = None, extra_env: Mapping[str, str] | None = None,
             redis_url: str | None = None) -> Proc:
        """One `python -m queue_gate` process (the same entry point as `queue-gate`), on
        the stack's Redis unless `redis_url` names another."""
        port, admin_port = free_port(), free_port()
        env = {
            "REDIS_URL": redis_url or self.redis_url,
            "QUEUE_GATE_SECRETS": SECRET,
            "QUEUE_GATE_ADMIN_TOKEN": ADMIN_TOKEN,
            "BACKEND_URL": backend_url,
            "QUEUE_GATE_ROOM": room,
            "QUEUE_GATE_RATE_PER_MINUTE": str(rate_per_minute),
            "QUEUE_GATE_COOKIE_SECURE": "0",
            # As behind the production proxy: each visitor's own address arrives in
            # X-Forwarded-For, so per-address join limits apply per visitor, not to loopback.
            "QUEUE_GATE_TRUSTED_PROXIES": "127.0.0.1/32",
            "PYTHONPATH": str(self.gate_src),
            **(extra_env or {}),
        }
        argv = [sys.executable, "-m", "queue_gate", "--host", HOST, "--port", str(port),
                "--admin-host", HOST, "--admin-port", str(admin_port)]
        return self._start(name, argv, port, admin_port=admin_port, env=env, cpus=cpus,
                           cwd=self.gate_src)

    def baseline(self, kind: str, *, cpus: str | None = None, uvloop: bool = False) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "bench.baseline", "--kind", kind, "--port", str(port),
                "--redis-url", self.redis_url, *(["--uvloop"] if uvloop else [])]
        return self._start(f"baseline-{kind}{'-uvloop' if uvloop else ''}", argv, port,
                           cpus=cpus)

    def sms_gateway(self) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "bench.sms_gateway", "--port", str(port)]
        return self._start("sms-gateway", argv, port)

    def booking_backend(self, database_url: str, room: str, webhook_url: str, *,
                        days: int | None = 70, extra_env: Mapping[str, str] | None = None,
                        name: str = "booking-backend", cpus: str | None = None,
                        src: Path = ROOT) -> Proc:
        """The real `booking_backend` (`python -m booking_backend`) with the demo's 50
        centres and `days` of generated slots (None: nothing loaded, the caller loads its
        own), checking the gate's passes for `room` and sending its codes to
        `webhook_url`, on the PostgreSQL database `database_url` (migrated by the
        backend's `--migrate` as it starts). `src`: another checkout to run it from (a
        snapshot of a commit, so that edits in this one do not change a long run)."""
        env = {"BOOKING_DATABASE_URL": database_url, **(extra_env or {})}
        if src != ROOT:
            env["PYTHONPATH"] = str(src)
        backend = self._booking_backend(name, room, webhook_url, env, ["--migrate"], src,
                                        cpus)
        if days is None:
            return backend
        # As an operator loads it, through the admin API.
        subprocess.run([sys.executable, "-m", "booking_backend.cli", "load-demo", "--days",
                        str(days)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "BOOKING_ADMIN_TOKEN": ADMIN_TOKEN,
                            "BOOKING_ADMIN_URL": backend.admin_url})
        return backend

    def redis_booking_backend(self, src: Path, redis_url: str, room: str, webhook_url: str,
                              *, extra_env: Mapping[str, str] | None = None,
                              name: str = "booking-backend-redis",
                              cpus: str | None = None) -> Proc:
        """The booking backend as it was before PostgreSQL (commit 6b6893a, all state in
        Redis), run from a checkout `src` of that commit on the Redis `redis_url`, with
        nothing loaded: as `booking_backend` above with `days=None`."""
        # That commit installs its `templates/` as the package `site_templates` (setup.cfg):
        # from a checkout, a link beside the logs stands in for the installed package.
        packages = self.logdir / "base-packages"
        packages.mkdir(exist_ok=True)
        link = packages / "site_templates"
        if not link.is_symlink():
            link.symlink_to(src / "templates", target_is_directory=True)
        env = {"BOOKING_REDIS_URL": redis_url, "PYTHONPATH": f"{src}{os.pathsep}{packages}",
               **(extra_env or {})}
        return self._booking_backend(name, room, webhook_url, env, [], src, cpus)

    def _booking_backend(self, name: str, room: str, webhook_url: str,
                         env: Mapping[str, str], options: Sequence[str], src: Path,
                         cpus: str | None) -> Proc:
        port, admin_port = free_port(), free_port()
        env = {
            "QUEUE_GATE_SECRETS": SECRET,
            "BOOKING_PASS_ROOM": room,
            "BOOKING_ADMIN_TOKEN": ADMIN_TOKEN,
            "BOOKING_IDENTITY_KEY": "bench-identity-key-not-for-production",
            "BOOKING_SENDER": "webhook",
            "BOOKING_WEBHOOK_URL": webhook_url,
            **env,
        }
        argv = [sys.executable, "-m", "booking_backend.main", *options, "--host", HOST,
                "--port", str(port), "--admin-host", HOST, "--admin-port", str(admin_port)]
        return self._start(name, argv, port, admin_port=admin_port, env=env, cpus=cpus,
                           cwd=src)

    def standin(self, backend_url: str, *, slots: int, service_ms: float,
                hint: str = "slots") -> Proc:
        """`bench.standin` in front of `backend_url`: `slots` requests at once, each held
        at least `service_ms`, its capacity hint from `hint` (slots | backend); its control
        API (phases, records) on `admin_port`."""
        port, admin_port = free_port(), free_port()
        argv = [sys.executable, "-m", "bench.standin", "--port", str(port), "--control-port",
                str(admin_port), "--backend", backend_url, "--slots", str(slots),
                "--service-ms", str(service_ms), "--hint", hint]
        return self._start("standin", argv, port, admin_port=admin_port)

    def stop(self, proc: Proc, wait_s: float = 10.0) -> None:
        proc.stop(wait_s)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


@contextlib.contextmanager
def stack(logdir: Path, redis_url: str, gate_src: Path = ROOT) -> Iterator[Stack]:
    logdir.mkdir(parents=True, exist_ok=True)
    running = Stack(logdir, redis_url, gate_src.resolve())
    try:
        yield running
    finally:
        running.stop_all()
