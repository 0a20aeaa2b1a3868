"""Schema migrations: numbered plain SQL files in `migrations/`, applied in order.

`booking-backend migrate` (and the demo, and the tests' fixtures) calls `migrate`. Each file
runs in a transaction of its own together with the row that records its version in
`schema_migrations`, so a file is applied whole or not at all. A session advisory lock makes
two processes migrating at once take turns: the second finds the work done.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from dataclasses import dataclass

import asyncpg

from booking_backend.db import UNAVAILABLE, StoreUnavailable

log = logging.getLogger(__name__)

# pg_advisory_lock key of the migrations (any fixed 64-bit number; "bkmigrat" in ASCII).
LOCK_KEY = 0x626B6D6967726174
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every shipped migration, by version; versions are unique and have no gaps."""
    folder = importlib.resources.files("booking_backend").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name,
                                   entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n: {[m.name for m in found]}")
    return found


async def applied(conn: asyncpg.Connection[asyncpg.Record]) -> list[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    return [r["version"] for r in await conn.fetch(
        "SELECT version FROM schema_migrations ORDER BY version")]


async def migrate_connection(conn: asyncpg.Connection[asyncpg.Record]) -> list[str]:
    """Apply what is missing on this connection; returns the names applied now."""
    done: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        # Race: read under the lock, so another process's migration finished before this.
        have = set(await applied(conn))
        for migration in migrations():
            if migration.version in have:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name)
            log.info("applied migration %s", migration.name)
            done.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return done


async def migrate(url: str) -> list[str]:
    """Connect to `url` and apply every missing migration."""
    try:
        conn = await asyncpg.connect(url, timeout=30)
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"cannot connect to the database: {exc}") from exc
    try:
        return await migrate_connection(conn)
    finally:
        await conn.close()


async def pending(url: str) -> list[str]:
    """The migrations a database still lacks (empty: up to date)."""
    conn = await asyncpg.connect(url, timeout=30)
    try:
        have = set(await applied(conn))
    finally:
        await conn.close()
    return [m.name for m in migrations() if m.version not in have]
