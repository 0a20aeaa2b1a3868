"""Fixtures shared by every test: private servers, and a clean Redis database per test.

The servers come from the one launcher, `devtools.servers`: started by the tests on free
loopback ports and stopped afterwards, so a test never touches (or flushes) a server that
someone else runs. `DEVTOOLS_SERVERS=pip` makes them the pip packages' binaries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from devtools.servers import private_postgres, private_redis


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """One Redis server for the whole run, started by the tests themselves."""
    with private_redis() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the whole run, started on first use (fsync off)."""
    with private_postgres() as url:
        yield url


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
