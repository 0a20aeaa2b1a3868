"""Invitation codes: letters sent in waves by age group (Bremen's way of avoiding a rush).

Only an HMAC of each code is stored (in PostgreSQL); the codes themselves are returned once,
to be printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from booking_backend.db import Connection, Database
from booking_backend.identity import IdentityHasher, is_code, new_code

Clock = Callable[[], float]
CODE_GROUPS = 3  # XXXX-XXXX-XXXX: 60 bits, unguessable even by the million


@dataclass(frozen=True, slots=True)
class Wave:
    name: str
    min_age: int
    count: int
    created: int


class Invitations:
    def __init__(self, db: Database, hasher: IdentityHasher, clock: Clock) -> None:
        self._db = db
        self._hasher = hasher
        self._clock = clock

    async def create_wave(self, name: str, min_age: int, count: int) -> tuple[Wave, list[str]]:
        wave = Wave(name, min_age, count, int(self._clock()))
        codes = [new_code(CODE_GROUPS) for _ in range(count)]

        async def work(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO waves (name, min_age, count, created) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (name) DO UPDATE SET min_age = $2, count = $3, created = $4",
                name, min_age, count, wave.created)
            await conn.execute(
                "INSERT INTO invitations (digest, wave) SELECT d, $2 FROM unnest($1::text[]) d"
                " ON CONFLICT (digest) DO NOTHING",
                [self._hasher.invitation(c) for c in codes], name)

        await self._db.transaction(work)
        return wave, codes

    async def wave_of(self, code: str) -> Wave | None:
        """The wave a code belongs to, or None for an unknown or malformed code."""
        if not is_code(code, CODE_GROUPS):
            return None
        row = await self._db.fetchrow(
            "SELECT w.* FROM invitations i JOIN waves w ON w.name = i.wave"
            " WHERE i.digest = $1", self._hasher.invitation(code))
        return None if row is None else _wave(row)

    async def used(self, digest: str) -> bool:
        """Whether an active booking was made with this invitation (a letter books once)."""
        return bool(await self._db.fetchval(
            "SELECT 1 FROM bookings WHERE invitation = $1 AND status = 'active'", digest))

    async def waves(self) -> list[Wave]:
        rows = await self._db.fetch("SELECT * FROM waves ORDER BY name")
        return [_wave(row) for row in rows]


def _wave(row: asyncpg.Record) -> Wave:
    return Wave(row["name"], row["min_age"], row["count"], row["created"])
