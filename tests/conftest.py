"""Fixtures shared by every test: a private Redis server and a clean database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.redis_server import private_redis


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """One redis-server for the whole run, started by the tests themselves."""
    with private_redis() as url:
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
