"""Taking and finding units of slots, and writing the booking that keeps them: the
statements every step that takes capacity shares (a hold and its confirmation, a
waiting-list assignment)."""

from __future__ import annotations

import asyncpg

from booking_backend.db import Connection

# What a booking copies from the hold or waiting-list entry it comes from.
PERSON_FIELDS = ("identity", "invitation", "name", "birth", "channel", "address", "lang")


async def take_pair(conn: Connection, centre: str, first: int, second: int,
                    state: str) -> bool:
    """Take one unit of each slot as `state` (held | booked), both or neither.

    The condition sits in the statement that takes: under concurrent takers PostgreSQL
    re-checks `held + booked < capacity` on the row it locked, so a unit is never taken
    twice (and the CHECK constraint would refuse it anyway)."""
    column = {"held": "held", "booked": "booked"}[state]
    taken = await conn.fetchval(
        f"UPDATE slots SET {column} = {column} + 1 WHERE centre = $1 AND start_at = $2"  # noqa: S608
        " AND held + booked < capacity RETURNING 1", centre, first)
    if taken is None:
        return False
    taken = await conn.fetchval(
        f"UPDATE slots SET {column} = {column} + 1 WHERE centre = $1 AND start_at = $2"  # noqa: S608
        " AND held + booked < capacity RETURNING 1", centre, second)
    if taken is None:
        # Both or neither: the first unit goes back (its row stays locked until commit).
        await conn.execute(
            f"UPDATE slots SET {column} = {column} - 1 WHERE centre = $1 AND start_at = $2",  # noqa: S608
            centre, first)
        return False
    return True


async def lock_units(conn: Connection, centre: str, starts: list[int]) -> None:
    """Lock slot rows in the order of their start, the order `take_pair` takes them in,
    before a statement that changes several at once: `UPDATE ... WHERE start_at = ANY(...)`
    locks in whatever order its plan visits rows, and two steps locking a pair in opposite
    orders deadlock (one of them is then run again)."""
    await conn.execute(
        "SELECT 1 FROM slots WHERE centre = $1 AND start_at = ANY($2::bigint[])"
        " ORDER BY start_at FOR UPDATE", centre, sorted(starts))


async def find_pair(conn: Connection, centre: str, earliest: int, min_gap: int,
                    max_gap: int) -> tuple[int, int] | None:
    """The earliest free first slot from `earliest` with the earliest free second slot
    between `min_gap` and `max_gap` after it."""
    row = await conn.fetchrow(
        "SELECT f.start_at AS first, s.start_at AS second FROM slots f"
        " CROSS JOIN LATERAL (SELECT start_at FROM slots s WHERE s.centre = f.centre"
        "  AND s.start_at BETWEEN f.start_at + $3 AND f.start_at + $4"
        "  AND s.held + s.booked < s.capacity ORDER BY s.start_at LIMIT 1) s"
        " WHERE f.centre = $1 AND f.start_at >= $2 AND f.held + f.booked < f.capacity"
        " ORDER BY f.start_at LIMIT 1", centre, earliest, min_gap, max_gap)
    return None if row is None else (row["first"], row["second"])


async def insert_booking(conn: Connection, *, code: str, hold_id: str | None, centre: str,
                         district: str, first_start: int, second_start: int,
                         person: asyncpg.Record, source: str, now: float) -> None:
    """Write an active booking of a pair already taken. Raises
    `asyncpg.UniqueViolationError` when the person (or the invitation) already has one:
    the partial unique indexes keep everyone at one booking, whoever commits first."""
    await conn.execute(
        "INSERT INTO bookings (code, hold_id, centre, district, first_start, second_start,"
        " status, identity, invitation, name, birth, channel, address, lang, source, created)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        code, hold_id, centre, district, first_start, second_start,
        *(person[name] for name in PERSON_FIELDS), source, now)
