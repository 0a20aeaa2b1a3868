"""A private redis-server for the demo, the tests and the benchmarks.

Started on a free loopback port in a temporary folder and stopped afterwards, so nothing
ever touches (or flushes) a Redis server that someone else runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def private_redis(*, appendonly: bool = False, maxmemory: str | None = None) -> Iterator[str]:
    """Start a throwaway redis-server on loopback and yield its URL; stop it afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server was not found on PATH. Install it (Debian/Ubuntu: "
            "'sudo apt-get install redis-server', Fedora: 'sudo dnf install redis', "
            "macOS: 'brew install redis'), or set REDIS_URL to a Redis you run."
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="test-redis-") as workdir:
        args = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if appendonly else "no", "--dir", workdir,
            "--logfile", str(Path(workdir) / "redis.log"),
        ]
        if maxmemory is not None:
            args += ["--maxmemory", maxmemory]
        proc = subprocess.Popen(  # noqa: S603 - our own argument list, binary from PATH
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            _wait_for_port(port, proc)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not gone within ten seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when whoever started it dies, even by SIGKILL, so a
    killed test run or demo leaves no redis-server behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError("redis-server did not start listening within 10 s")
