"""What the gauges and the admin's stats show, read from the database in one snapshot
(the same in every process): units by state, per centre, bookings, people waiting, the
outbox's backlog and the counters that only grow."""

from __future__ import annotations

from dataclasses import dataclass

from booking_backend.db import Connection, Database

COUNT_NAMES = ("capacity", "free", "held", "booked", "bookings", "waiting")
EXPIRY_NAMES = ("holds_expired", "codes_expired")  # counters that only grow
CENTRE_STATES = ("capacity", "free", "held", "booked")


@dataclass(frozen=True, slots=True)
class Levels:
    counts: dict[str, int]  # COUNT_NAMES and EXPIRY_NAMES
    centres: dict[str, dict[str, int]]  # centre -> capacity/free/held/booked units
    outbox_pending: int
    outbox_oldest_created: float | None  # when the oldest pending message was queued


async def read_levels(db: Database) -> Levels:
    async def work(conn: Connection) -> Levels:
        rows = await conn.fetch(
            "SELECT centre, sum(capacity)::bigint AS capacity, sum(held)::bigint AS held,"
            " sum(booked)::bigint AS booked FROM slots GROUP BY centre")
        centres: dict[str, dict[str, int]] = {}
        counts = dict.fromkeys(COUNT_NAMES + EXPIRY_NAMES, 0)
        for row in rows:
            units = {"capacity": row["capacity"], "held": row["held"], "booked": row["booked"],
                     "free": row["capacity"] - row["held"] - row["booked"]}
            centres[row["centre"]] = units
            for state in CENTRE_STATES:
                counts[state] += units[state]
        counts["bookings"] = await conn.fetchval(
            "SELECT count(*) FROM bookings WHERE status = 'active'")
        counts["waiting"] = await conn.fetchval(
            "SELECT count(*) FROM waitlist WHERE status = 'waiting'")
        for row in await conn.fetch("SELECT name, value FROM counters"):
            counts[row["name"]] = row["value"]
        outbox = await conn.fetchrow("SELECT count(*) AS n, min(created) AS oldest FROM outbox")
        assert outbox is not None
        return Levels(counts, centres, outbox["n"],
                      None if outbox["oldest"] is None else float(outbox["oldest"]))

    return await db.transaction(work, snapshot=True)


async def counts(db: Database) -> dict[str, int]:
    """The deployment's counts by name (COUNT_NAMES)."""
    levels = await read_levels(db)
    return {name: levels.counts[name] for name in COUNT_NAMES}
