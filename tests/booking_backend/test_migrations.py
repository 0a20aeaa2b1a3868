"""Schema migrations: numbered SQL files, each applied once in its own transaction, by
`booking-backend migrate`; two processes migrating at once do not collide; a database that
holds data of the previous version keeps it."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest

from booking_backend.migrations import migrate, migrations, pending
from tests.booking_backend.conftest import Env
from tests.conftest import database_url_of


@pytest.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """An empty database of our private server (no migration), dropped afterwards."""
    name = f"empty_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(postgres_server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    yield database_url_of(postgres_server_url, name)
    conn = await asyncpg.connect(postgres_server_url)
    try:
        await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await conn.close()


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


def test_migrations_are_numbered_without_gaps() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "0001_initial.sql"


async def test_an_empty_database_is_migrated_to_the_latest_version(
    empty_database_url: str,
) -> None:
    assert await pending(empty_database_url) == [m.name for m in migrations()]
    assert await migrate(empty_database_url) == [m.name for m in migrations()]
    assert await pending(empty_database_url) == []
    assert {"slots", "holds", "bookings", "waitlist", "verifications", "outbox",
            "invitations", "sessions", "schema_migrations"} <= await tables(empty_database_url)


async def test_two_processes_migrating_at_once_apply_each_file_once(
    empty_database_url: str,
) -> None:
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(3)))
    applied = [name for result in results for name in result]
    assert applied == [m.name for m in migrations()]  # once, by whoever got the lock first


async def test_a_database_with_data_keeps_it_when_migrated_again(env: Env) -> None:
    """The test's database holds the previous (here: the current) version with data:
    migrating again is a no-op and every booking survives."""
    pairs = await env.add_pairs(2)
    booking = await env.book(pairs[0], "a")
    assert await migrate(env.settings.database_url) == []
    found = await env.backend.inventory.booking(booking["booking_code"])
    assert found is not None and found.status == "active"
    assert (await env.backend.counts())["bookings"] == 1


def test_the_migrate_command(empty_database_url: str) -> None:
    environ = {**os.environ, "BOOKING_DATABASE_URL": empty_database_url}
    for _ in range(2):  # the second run finds nothing to do
        result = subprocess.run(
            [sys.executable, "-m", "booking_backend.main", "migrate"], env=environ,
            capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
    assert "0001_initial.sql" in result.stderr or "up to date" in result.stderr
    assert asyncio.run(pending(empty_database_url)) == []


async def test_version_3_keeps_the_data_of_version_2(empty_database_url: str) -> None:
    """A database at version 2 holding a booking, a waiting entry and a message: 0003 adds
    the re-offer columns (every existing entry ordinary, no closure) and keeps the rows."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        for migration in migrations()[:2]:
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                               migration.version, migration.name)
        await conn.execute(
            "INSERT INTO centres VALUES ('c', 'd', 'Centre');"
            " INSERT INTO slots (centre, start_at, capacity, booked) VALUES ('c', 100, 1, 1),"
            " ('c', 200, 1, 1);"
            " INSERT INTO bookings (code, centre, district, first_start, second_start, status,"
            " identity, name, birth, channel, address, source, created) VALUES ('AAAA-BBBB',"
            " 'c', 'd', 100, 200, 'active', 'id1', 'N', '1940-01-01', 'sms', '+49151', 'api',"
            " 1);"
            " INSERT INTO waitlist (id, identity, district, status, name, birth, channel,"
            " address, joined) VALUES ('w1', 'id2', 'd', 'waiting', 'M', '1941-01-01', 'sms',"
            " '+49152', 1);"
            " INSERT INTO outbox (id, kind, channel, address, booking, due, created) VALUES"
            " ('m1', 'booked', 'sms', '+49151', 'AAAA-BBBB', 1, 1)")
    finally:
        await conn.close()
    assert await pending(empty_database_url) == [m.name for m in migrations()[2:]]
    assert await migrate(empty_database_url) == [m.name for m in migrations()[2:]]
    conn = await asyncpg.connect(empty_database_url)
    try:
        entry = await conn.fetchrow("SELECT * FROM waitlist")
        assert entry is not None
        assert (entry["id"], entry["priority"], entry["closure"]) == ("w1", 0, None)
        assert await conn.fetchval("SELECT name FROM bookings") == "N"
        assert await conn.fetchval("SELECT reason FROM outbox WHERE id = 'm1'") is None
        # The schema holds the re-offer rule: a priority entry names its closure.
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE waitlist SET priority = 1")
    finally:
        await conn.close()
