"""Fixtures shared by every test: private servers, a clean Redis database per test, and a
fresh PostgreSQL database per test (a copy of a migrated template).

The servers come from the one launcher, `devtools.servers`: started by the tests on free
loopback ports and stopped afterwards, so a test never touches (or flushes) a server that
someone else runs. `DEVTOOLS_SERVERS=pip` makes them the pip packages' binaries.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from booking_backend.migrations import migrate
from devtools.servers import private_postgres, private_redis
from tests.browser import launched_chromium


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """One Redis server for the whole run, started by the tests themselves."""
    with private_redis() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the whole run, started on first use (fsync off);
    or the server of BOOKING_DATABASE_URL when set, where the tests only ever create and
    drop databases of their own."""
    given = os.environ.get("BOOKING_DATABASE_URL")
    if given:
        yield given
        return
    with private_postgres() as url:
        yield url


def database_url_of(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str) -> Iterator[str]:
    """A database with every migration applied, created once per run: each test's database
    is a copy of it (CREATE DATABASE ... TEMPLATE copies files: fast)."""
    name = f"booking_template_{secrets.token_hex(4)}"

    async def create() -> None:
        await _admin(postgres_server_url, f"CREATE DATABASE {name}")
        await migrate(database_url_of(postgres_server_url, name))

    asyncio.run(create())
    yield name
    asyncio.run(_admin(postgres_server_url, f"DROP DATABASE {name} WITH (FORCE)"))


async def _admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def database_url(postgres_server_url: str, postgres_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database of our private server for this test, dropped afterwards
    (only databases the tests created are ever dropped)."""
    name = f"test_{secrets.token_hex(6)}"
    await _admin(postgres_server_url, f"CREATE DATABASE {name} TEMPLATE {postgres_template}")
    yield database_url_of(postgres_server_url, name)
    await _admin(postgres_server_url, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
async def redis_url(redis_server_url: str) -> str:
    """The private server's URL, its data flushed before each test (it is ours to flush)."""
    client = aioredis.Redis.from_url(redis_server_url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    return redis_server_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Real Chromium, headless, for one test (tests/browser.py)."""
    async for launched in launched_chromium():
        yield launched
