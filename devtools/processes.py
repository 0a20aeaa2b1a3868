"""OS processes on loopback that we start, wait for, measure and stop.

Every local server of the demo, the tests and the benchmark runs as a `ManagedProcess`:
started from an argument list with its output in a log file, tied to our own life on Linux
(it gets SIGTERM when the process that started it dies, even by SIGKILL, so a killed test run
leaves no server behind), and stopped by SIGTERM, then SIGKILL if it lingers.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    # Another process may take it before our server binds it; the server then fails to start
    # and says so in its log (rare on a test machine, and loud, never silent).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based overall).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stop_process(popen: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not gone within `timeout_s`; returns its exit code."""
    if popen.poll() is None:
        popen.terminate()
        try:
            return popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %s did not stop within %.0f s of SIGTERM: killed", popen.pid,
                        timeout_s)
            popen.kill()
    return popen.wait()


def _die_with_parent() -> None:
    """Linux: SIGTERM to the child when the thread that started it dies, even by SIGKILL.

    Runs in the child after Popen switched user (if asked to), so the setting survives: the
    kernel clears it on credential changes, not on exec of an ordinary program."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class ManagedProcess:
    """One OS process we started: its log, its readiness, its CPU time, its end."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @classmethod
    def start(cls, name: str, argv: Sequence[str], *, log_path: Path,
              env: Mapping[str, str] | None = None, cwd: Path | None = None,
              user: str | None = None) -> ManagedProcess:
        """Start `argv` with stdout and stderr appended to `log_path`.

        `env` entries are added to our own environment; `user` runs it as that account
        (only root may ask; PostgreSQL refuses to run as root)."""
        with log_path.open("ab") as logfile:
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, cwd=cwd,
                user=user, group=_group_of(user), extra_groups=[] if user else None,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        log.debug("started %s (pid %s): %s", name, popen.pid, " ".join(argv))
        return cls(name, popen, log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_for_port(self, port: int, host: str = HOST, timeout_s: float = 20.0) -> None:
        """Return once something listens on host:port; raise if we exit or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with code {self.popen.returncode} "
                                   f"before listening on port {port}:\n{self.log_tail()}")
            if port_is_open(port, host):
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not listen on port {port} within {timeout_s:g} s:"
                           f"\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU seconds the process has used so far (its own, not its children's)."""
        return cpu_seconds(self.pid)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM; SIGKILL if it has not gone after `timeout_s` (an overloaded server may wait
        for its requests in flight). Returns the exit code; harmless when already gone."""
        return stop_process(self.popen, timeout_s)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would end it (for fault tests)."""
        if self.running():
            self.popen.kill()
        self.popen.wait()

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _group_of(user: str | None) -> int | None:
    """The primary group of `user`, so that a switched process keeps none of root's."""
    return None if user is None else pwd.getpwnam(user).pw_gid
