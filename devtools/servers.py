"""Private Redis and PostgreSQL servers on loopback for the demo, the tests and the benchmark.

Each is started in a temporary folder on a free port and stopped afterwards, so nothing
ever touches (or flushes) a server that someone else runs. Their programs come from
`devtools.binaries` (the machine's own first, then the pip packages of the dev/demo extras).

    with private_redis() as url: ...        # redis://127.0.0.1:PORT/0
    with private_postgres() as dsn: ...     # postgresql://postgres@127.0.0.1:PORT/postgres
    with private_redis_cluster() as cluster: ...   # cluster.url names one node of three masters
    with private_sentinel() as sentinel: ...       # sentinel.sentinels, sentinel.master_name

`redis_server()` and `postgres_server()` yield a `LocalServer` instead, whose `process`
a fault test may `kill()`; a cluster's and a Sentinel set-up's servers are theirs to kill too,
and a PostgreSQL server can be `restart()`ed on its data afterwards.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from devtools.binaries import (
    PostgresPrograms,
    RedisProgram,
    ServerNotFound,
    find_postgres,
    find_redis_server,
)
from devtools.processes import HOST, ManagedProcess, free_port

log = logging.getLogger(__name__)

# Who runs PostgreSQL when we are root (it refuses to run as root): an account that owns
# nothing, rather than the machine's own `postgres`, which owns the machine's real cluster.
POSTGRES_RUN_AS = "nobody"
START_TIMEOUT_S = 30.0


@dataclass
class LocalServer:
    """A server we started: where to reach it, its process, and where its program came from.
    `restart` (PostgreSQL only) kills the process if it still runs and starts the server
    again on the same data and port, as after a crash: `process` is then the new one."""

    url: str
    process: ManagedProcess
    origin: str
    restart: Callable[[], None] | None = None


def _start_redis(program: RedisProgram, workdir: Path, args: Sequence[str],
                 name: str = "redis-server") -> tuple[LocalServer, int]:
    """One Redis process on a free loopback port in `workdir`, listening when this returns."""
    port = free_port()
    argv = [str(program.path), "--port", str(port), "--bind", HOST, "--save", "",
            "--dir", str(workdir), "--daemonize", "no", *args]
    process = ManagedProcess.start(name, argv, log_path=workdir / "redis.log")
    try:
        process.wait_for_port(port, timeout_s=START_TIMEOUT_S)
    except RuntimeError:
        process.stop()
        raise
    log.info("private %s at 127.0.0.1:%s (pid %s) from %s", name, port, process.pid,
             program.origin)
    return LocalServer(f"redis://{HOST}:{port}/0", process, program.origin), port


@contextlib.contextmanager
def redis_server(*, appendonly: bool = False, maxmemory: str | None = None,
                 extra_args: Sequence[str] = ()) -> Iterator[LocalServer]:
    """Start a throwaway Redis (or Valkey) on loopback without persistence; stop it after."""
    program = find_redis_server()
    with tempfile.TemporaryDirectory(prefix="devtools-redis-") as tmp:
        args = ["--appendonly", "yes" if appendonly else "no"]
        if maxmemory is not None:
            args += ["--maxmemory", maxmemory]
        server, _ = _start_redis(program, Path(tmp), [*args, *extra_args])
        try:
            yield server
        finally:
            server.process.stop()


@contextlib.contextmanager
def private_redis(*, appendonly: bool = False, maxmemory: str | None = None,
                  extra_args: Sequence[str] = ()) -> Iterator[str]:
    """A throwaway Redis on loopback: yields its `redis://127.0.0.1:PORT/0` URL."""
    with redis_server(appendonly=appendonly, maxmemory=maxmemory,
                      extra_args=extra_args) as server:
        yield server.url


@dataclass(frozen=True)
class LocalCluster:
    """A Redis Cluster we started: every node (masters and replicas, as `redis-cli` paired
    them; roles change after a failover), and a URL naming one of them."""

    servers: tuple[LocalServer, ...]

    @property
    def url(self) -> str:
        return self.servers[0].url


@contextlib.contextmanager
def private_redis_cluster(*, masters: int = 3, replicas: int = 1,
                          node_timeout_ms: int = 2000) -> Iterator[LocalCluster]:
    """A throwaway Redis Cluster on loopback: `masters` masters with `replicas` replicas
    each, no persistence, slots spread by `redis-cli --cluster create`; stopped afterwards.

    `node_timeout_ms` is how long a silent master takes to be failed over (short here, so a
    fault test's failover completes in a few seconds)."""
    program = find_redis_server()
    cli = _redis_cli(program)
    started: list[LocalServer] = []
    with tempfile.TemporaryDirectory(prefix="devtools-redis-cluster-") as tmp:
        try:
            ports = []
            for index in range(masters * (1 + replicas)):
                workdir = Path(tmp) / f"node{index}"
                workdir.mkdir()
                server, port = _start_redis(program, workdir, [
                    "--appendonly", "no", "--cluster-enabled", "yes",
                    "--cluster-config-file", str(workdir / "nodes.conf"),
                    # Its bus on a free port of its own (the default, port + 10000, may be
                    # taken or beyond 65535).
                    "--cluster-port", str(free_port()),
                    "--cluster-node-timeout", str(node_timeout_ms)], name="redis-cluster-node")
                started.append(server)
                ports.append(port)
            _run_quietly([str(cli), "--cluster", "create",
                          *(f"{HOST}:{port}" for port in ports),
                          "--cluster-replicas", str(replicas), "--cluster-yes"],
                         Path(tmp) / "create.log")
            cluster = LocalCluster(tuple(started))
            _wait_for_cluster(cluster, masters * (1 + replicas))
            log.info("private Redis Cluster of %d masters, %d replicas each, at %s", masters,
                     replicas, ", ".join(str(port) for port in ports))
            yield cluster
        finally:
            for server in started:
                server.process.stop()


def _wait_for_cluster(cluster: LocalCluster, nodes: int) -> None:
    """Until every node says the cluster is ok and knows all the others."""
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = list(cluster.servers)
    while pending and time.monotonic() < deadline:
        with redis.Redis.from_url(pending[0].url, decode_responses=True) as client:
            info = client.execute_command("CLUSTER", "INFO")
            text = info if isinstance(info, str) else str(info)
            known = len(str(client.execute_command("CLUSTER", "NODES")).strip().splitlines())
        if "cluster_state:ok" in text and known == nodes:
            pending.pop(0)
        else:
            time.sleep(0.05)
    if pending:
        raise RuntimeError(f"Redis Cluster not ready within {START_TIMEOUT_S:g} s:\n"
                           f"{pending[0].process.log_tail()}")


@dataclass(frozen=True)
class LocalSentinel:
    """A master, its replica and three Sentinels watching them, all started by us."""

    master_name: str
    master: LocalServer
    replica: LocalServer
    sentinel_servers: tuple[LocalServer, ...]

    @property
    def sentinels(self) -> tuple[str, ...]:
        """`host:port` of each Sentinel, as QUEUE_GATE_REDIS_SENTINELS lists them."""
        return tuple(server.url.removeprefix("redis://").removesuffix("/0")
                     for server in self.sentinel_servers)


@contextlib.contextmanager
def private_sentinel(*, master_name: str = "gate", sentinels: int = 3, quorum: int = 2,
                     down_after_ms: int = 1000, failover_timeout_ms: int = 5000,
                     appendonly: bool = False,
                     master_link: Callable[[int], int] | None = None
                     ) -> Iterator[LocalSentinel]:
    """A throwaway master, one replica and `sentinels` Sentinels (`redis-server --sentinel`)
    on loopback, ready when this yields: the replica in sync, every Sentinel knowing the
    replica and the other Sentinels (so a failover can be agreed). Stopped afterwards.

    `down_after_ms` is how long a silent master takes to be judged down (short here, so a
    fault test's failover completes in a few seconds). `master_link`, given the master's
    port, returns the port by which the replica and the Sentinels (and so their clients)
    reach it: a relay a fault test controls, e.g. to make the replica lag (Sentinel would
    "fix" a replica that replicates from an address other than the one it watches); the
    master's own port by default."""
    program = find_redis_server()
    started: list[LocalServer] = []
    with tempfile.TemporaryDirectory(prefix="devtools-redis-sentinel-") as tmp:
        root = Path(tmp)
        persistence = ["--appendonly", "yes" if appendonly else "no"]
        try:
            (root / "master").mkdir()
            master, master_port = _start_redis(program, root / "master", persistence)
            started.append(master)
            (root / "replica").mkdir()
            upstream = master_link(master_port) if master_link else master_port
            replica, _ = _start_redis(program, root / "replica", [
                *persistence, "--replicaof", HOST, str(upstream)], name="redis-replica")
            started.append(replica)
            watchers = []
            for index in range(sentinels):
                workdir = root / f"sentinel{index}"
                workdir.mkdir()
                port = free_port()
                config = workdir / "sentinel.conf"
                config.write_text(
                    f"port {port}\nbind {HOST}\ndir {workdir}\n"
                    f"sentinel monitor {master_name} {HOST} {upstream} {quorum}\n"
                    f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
                    f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {master_name} 1\n")
                process = ManagedProcess.start(
                    "redis-sentinel", [str(program.path), str(config), "--sentinel"],
                    log_path=workdir / "sentinel.log")
                watcher = LocalServer(f"redis://{HOST}:{port}/0", process, program.origin)
                started.append(watcher)
                process.wait_for_port(port, timeout_s=START_TIMEOUT_S)
                watchers.append(watcher)
            setup = LocalSentinel(master_name, master, replica, tuple(watchers))
            _wait_for_sentinels(setup)
            log.info("private Sentinel set-up %r: master %s, replica %s, sentinels %s",
                     master_name, master.url, replica.url, ", ".join(setup.sentinels))
            yield setup
        finally:
            for server in reversed(started):
                server.process.stop()


def _wait_for_sentinels(setup: LocalSentinel) -> None:
    """Until the replica is in sync and every Sentinel knows it and all other Sentinels."""
    deadline = time.monotonic() + START_TIMEOUT_S
    others = len(setup.sentinel_servers) - 1
    while time.monotonic() < deadline:
        with redis.Redis.from_url(setup.master.url, decode_responses=True) as client:
            replication = client.info("replication")
        ready = replication.get("connected_slaves") == 1 and \
            "online" in str(replication.get("slave0", ""))
        for server in setup.sentinel_servers:
            with redis.Redis.from_url(server.url, decode_responses=True) as client:
                state = client.execute_command("SENTINEL", "MASTER", setup.master_name)
            fields = _pairs(state)
            ready = ready and fields.get("num-slaves") == "1" and \
                fields.get("num-other-sentinels") == str(others)
        if ready:
            return
        time.sleep(0.1)
    raise RuntimeError(f"Sentinels not ready within {START_TIMEOUT_S:g} s:\n"
                       f"{setup.sentinel_servers[0].process.log_tail()}")


def _pairs(reply: object) -> dict[str, str]:
    """A reply as a dict: RESP2 sends name/value lists, some clients parse them already."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    items = [str(item) for item in reply] if isinstance(reply, list) else []
    return dict(zip(items[::2], items[1::2], strict=False))


def _redis_cli(program: RedisProgram) -> Path:
    """The command-line client that came with the server (`redis-cli` or `valkey-cli`)."""
    cli = program.path.with_name(program.path.name.replace("-server", "-cli"))
    if not cli.is_file():
        raise ServerNotFound(f"{cli.name} is not beside {program.path} ({program.origin}): "
                             "it is needed to create a Redis Cluster")
    return cli


def _run_quietly(argv: Sequence[str], log_path: Path) -> None:
    """Run a tool to its end, its output kept for the error message."""
    with log_path.open("ab") as logfile:
        result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=logfile,
                                stderr=subprocess.STDOUT, check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed with code {result.returncode}:\n"
                           f"{log_path.read_text(errors='replace')[-2000:]}")


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
        server = LocalServer(f"postgresql://postgres@{HOST}:{port}/postgres", process,
                             programs.origin)

        def restart() -> None:
            server.process.kill()
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                # The killed postmaster's children leave within moments; until they have,
                # a new postmaster refuses the shared memory they still hold.
                server.process = ManagedProcess.start(
                    "postgres", argv, log_path=workdir / "postgres.log", cwd=workdir, user=user)
                try:
                    _wait_until_ready(server.process, data, port)
                    return
                except RuntimeError:
                    server.process.kill()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

        server.restart = restart
        try:
            _wait_until_ready(process, data, port)
            log.info("private PostgreSQL at 127.0.0.1:%s (pid %s) from %s", port, process.pid,
                     programs.origin)
            yield server
        finally:
            _stop_postgres(programs, data, server.process, user, workdir)


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
