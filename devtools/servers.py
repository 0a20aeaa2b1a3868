"""Private Redis and PostgreSQL servers on loopback for the demo, the tests and the benchmark.

Each is started in a temporary folder on a free port and stopped afterwards, so nothing
ever touches (or flushes) a server that someone else runs. Their programs come from
`devtools.binaries` (the machine's own first, then the pip packages of the dev/demo extras).

    with private_redis() as url: ...        # redis://127.0.0.1:PORT/0
    with private_postgres() as dsn: ...     # postgresql://postgres@127.0.0.1:PORT/postgres

`redis_server()` and `postgres_server()` yield a `LocalServer` instead, whose `process`
a fault test may `kill()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.binaries import PostgresPrograms, find_postgres, find_redis_server
from devtools.processes import HOST, ManagedProcess, free_port

log = logging.getLogger(__name__)

# Who runs PostgreSQL when we are root (it refuses to run as root): an account that owns
# nothing, rather than the machine's own `postgres`, which owns the machine's real cluster.
POSTGRES_RUN_AS = "nobody"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LocalServer:
    """A server we started: where to reach it, its process, and where its program came from."""

    url: str
    process: ManagedProcess
    origin: str


@contextlib.contextmanager
def redis_server(*, appendonly: bool = False, maxmemory: str | None = None,
                 extra_args: Sequence[str] = ()) -> Iterator[LocalServer]:
    """Start a throwaway Redis (or Valkey) on loopback without persistence; stop it after."""
    program = find_redis_server()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="devtools-redis-") as tmp:
        workdir = Path(tmp)
        argv = [str(program.path), "--port", str(port), "--bind", HOST, "--save", "",
                "--appendonly", "yes" if appendonly else "no", "--dir", str(workdir),
                "--daemonize", "no"]
        if maxmemory is not None:
            argv += ["--maxmemory", maxmemory]
        argv += list(extra_args)
        process = ManagedProcess.start("redis-server", argv, log_path=workdir / "redis.log")
        try:
            process.wait_for_port(port, timeout_s=START_TIMEOUT_S)
            log.info("private Redis at 127.0.0.1:%s (pid %s) from %s", port, process.pid,
                     program.origin)
            yield LocalServer(f"redis://{HOST}:{port}/0", process, program.origin)
        finally:
            process.stop()


@contextlib.contextmanager
def private_redis(*, appendonly: bool = False, maxmemory: str | None = None,
                  extra_args: Sequence[str] = ()) -> Iterator[str]:
    """A throwaway Redis on loopback: yields its `redis://127.0.0.1:PORT/0` URL."""
    with redis_server(appendonly=appendonly, maxmemory=maxmemory,
                      extra_args=extra_args) as server:
        yield server.url


@contextlib.contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[LocalServer]:
    """A throwaway PostgreSQL cluster on loopback; stopped and deleted afterwards.

    `initdb` in a temporary folder (trust authentication, UTF8, C locale), listening on
    127.0.0.1 on a free port with its unix socket in that folder. Unless `durable`, fsync,
    full-page writes and synchronous commit are off: several times faster for tests, and a
    crash of the machine loses the cluster, which is thrown away anyway."""
    programs = find_postgres()
    user = POSTGRES_RUN_AS if os.geteuid() == 0 else None
    if user is not None:
        programs = _reachable_by(programs, user)
    with tempfile.TemporaryDirectory(prefix="devtools-postgres-") as tmp:
        workdir = Path(tmp)
        data = workdir / "data"
        if user is not None:
            account = pwd.getpwnam(user)
            os.chown(workdir, account.pw_uid, account.pw_gid)
        initdb = [str(programs.initdb), "-D", str(data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", *([] if durable else ["--no-sync"])]
        _run_as(initdb, user, workdir, workdir / "initdb.log")
        port = free_port()
        argv = [str(programs.postgres), "-D", str(data), "-h", HOST, "-p", str(port),
                "-k", str(workdir)]
        if not durable:
            argv += ["-c", "fsync=off", "-c", "full_page_writes=off",
                     "-c", "synchronous_commit=off"]
        process = ManagedProcess.start("postgres", argv, log_path=workdir / "postgres.log",
                                       cwd=workdir, user=user)
        try:
            _wait_until_ready(process, data, port)
            log.info("private PostgreSQL at 127.0.0.1:%s (pid %s) from %s", port, process.pid,
                     programs.origin)
            yield LocalServer(f"postgresql://postgres@{HOST}:{port}/postgres", process,
                              programs.origin)
        finally:
            _stop_postgres(programs, data, process, user, workdir)


@contextlib.contextmanager
def private_postgres(*, durable: bool = False) -> Iterator[str]:
    """A throwaway PostgreSQL on loopback: yields
    `postgresql://postgres@127.0.0.1:PORT/postgres` (trust authentication)."""
    with postgres_server(durable=durable) as server:
        yield server.url


def _run_as(argv: Sequence[str], user: str | None, cwd: Path, log_path: Path) -> None:
    """Run a PostgreSQL tool to its end as `user`, its output kept for the error message."""
    with log_path.open("ab") as logfile:
        result = subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
            cwd=cwd, user=user, group=None if user is None else pwd.getpwnam(user).pw_gid,
            extra_groups=[] if user else None, check=False, timeout=120,
        )
    if result.returncode != 0:
        output = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{Path(argv[0]).name} failed with code {result.returncode}:\n"
                           f"{output}")


def _wait_until_ready(process: ManagedProcess, data: Path, port: int) -> None:
    """Until the postmaster says "ready" in postmaster.pid (as `pg_ctl -w` waits): a port
    that accepts connections may still answer "the database system is starting up"."""
    process.wait_for_port(port, timeout_s=START_TIMEOUT_S)
    deadline = time.monotonic() + START_TIMEOUT_S
    pidfile = data / "postmaster.pid"
    while time.monotonic() < deadline:
        if not process.running():
            raise RuntimeError(f"postgres exited with code {process.popen.returncode}:\n"
                               f"{process.log_tail()}")
        with contextlib.suppress(OSError):
            lines = pidfile.read_text().splitlines()
            # Line 8 is the postmaster's status; the file is rewritten while we read it.
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        time.sleep(0.02)
    raise RuntimeError(f"postgres was not ready within {START_TIMEOUT_S:g} s:\n"
                       f"{process.log_tail()}")


def _stop_postgres(programs: PostgresPrograms, data: Path, process: ManagedProcess,
                   user: str | None, workdir: Path) -> None:
    """`pg_ctl stop -m fast` (rolls back open transactions, disconnects clients), then
    SIGTERM/SIGKILL if the postmaster is still there."""
    if process.running():
        try:
            _run_as([str(programs.pg_ctl), "stop", "-D", str(data), "-m", "fast", "-w",
                     "-t", "15"], user, workdir, workdir / "pg_ctl.log")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            # A killed postmaster (fault tests) or a stuck one: our own signals end it.
            log.warning("pg_ctl stop failed, stopping postgres by signal: %s", exc)
    process.stop(timeout_s=10)


def _reachable_by(programs: PostgresPrograms, user: str) -> PostgresPrograms:
    """Programs that `user` may run: these where every folder above them lets others through
    (Debian's, a venv in /work), else a copy of their installation in the temp folder (a
    venv under root's private home: its 700 mode keeps `user` out)."""
    if _others_may_enter(programs.bindir):
        return programs
    # Named for the installation and its postgres build, so an upgrade makes a new copy.
    built = programs.postgres.stat()
    digest = hashlib.sha256(f"{programs.root}:{built.st_size}:{built.st_mtime_ns}".encode())
    digest_hex = digest.hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"devtools-postgres-{os.geteuid()}-{digest_hex}"
    if not ((cache / ".complete").exists() and _ours_alone(cache)):
        staging = Path(tempfile.mkdtemp(prefix=cache.name + "-", dir=cache.parent))
        for folder in programs.folders:
            shutil.copytree(programs.root / folder, staging / folder, symlinks=True)
        (staging / ".complete").touch()
        staging.chmod(0o755)
        try:
            staging.rename(cache)
        except OSError:
            # Another process copied it first (or a stale copy is there): use theirs if it
            # is whole and ours alone, else this run keeps its own copy.
            if (cache / ".complete").exists() and _ours_alone(cache):
                shutil.rmtree(staging, ignore_errors=True)
            else:
                cache = staging
        log.info("PostgreSQL programs copied to %s: %s cannot reach %s", cache, user,
                 programs.root)
    bindir = cache / programs.bindir.relative_to(programs.root)
    return PostgresPrograms(bindir, f"{programs.origin}, copied to {cache}", cache,
                            programs.folders)


def _others_may_enter(folder: Path) -> bool:
    return all(path.stat().st_mode & stat.S_IXOTH for path in (folder, *folder.parents))


def _ours_alone(folder: Path) -> bool:
    """Owned by us and writable by nobody else: safe to run programs from."""
    info = folder.stat()
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
