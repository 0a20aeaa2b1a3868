"""The waiting list: joining it, and serving it from capacity that becomes free.

`assign` runs inside the transaction that frees capacity (a cancellation, a release of new
slots), so a freed pair goes to exactly one entry before any direct booker can take it, and
an entry is served at most once: it is claimed with `FOR UPDATE SKIP LOCKED` and leaves the
list in the same transaction that books it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

import asyncpg

from booking_backend import outbox
from booking_backend.catalogue import Centre, District
from booking_backend.db import Connection, Database
from booking_backend.identity import new_code
from booking_backend.slots import find_pair, insert_booking, take_pair

Clock = Callable[[], float]
# Entries a release may skip (their person booked directly meanwhile) beyond its quota;
# the rest of the list waits for the next cancellation or release.
SKIP_MARGIN = 10


class Waitlist:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def join(
        self, identity: str, district: District, centre: Centre | None,
        fields: Mapping[str, str],
    ) -> tuple[str, int]:
        """Join the list of a centre (when chosen) or of the home district.
        Returns (ok | already_waiting | already_booked, position in that list)."""

        async def work(conn: Connection) -> tuple[str, int]:
            # Race: one person joining twice at once: the second waits for the first here.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                               f"waitlist-person:{identity}")
            if await conn.fetchval(
                    "SELECT 1 FROM bookings WHERE identity = $1 AND status = 'active'",
                    identity):
                return "already_booked", 0
            entry = await conn.fetchrow(
                "SELECT seq, centre, district, priority FROM waitlist"
                " WHERE identity = $1 AND status = 'waiting'", identity)
            status = "already_waiting"
            if entry is None:
                status = "ok"
                entry = await conn.fetchrow(
                    "INSERT INTO waitlist (id, identity, district, centre, status, invitation,"
                    " name, birth, channel, address, lang, joined) VALUES ($1, $2, $3, $4,"
                    " 'waiting', $5, $6, $7::text::date, $8, $9, $10, $11)"
                    " RETURNING seq, centre, district, priority",
                    secrets.token_urlsafe(12), identity, district.id,
                    centre.id if centre else None, fields.get("invitation", ""),
                    fields["name"], fields["birth"], fields["channel"], fields["address"],
                    fields.get("lang", "de"), int(self._clock()))
            assert entry is not None  # INSERT ... RETURNING gives its row
            # People a centre cancelled (priority 1) stand before everyone who joined.
            position = await conn.fetchval(
                "SELECT count(*) FROM waitlist WHERE status = 'waiting'"
                " AND (priority > $4 OR (priority = $4 AND seq <= $1))"
                " AND (CASE WHEN $2::text IS NULL THEN centre IS NULL AND district = $3"
                " ELSE centre = $2 END)", entry["seq"], entry["centre"], entry["district"],
                entry["priority"])
            return status, int(position)

        return await self._db.transaction(work)


async def assign(conn: Connection, centre: str, district: str, quota: int, *, now: int,
                 earliest: int, min_gap: int, max_gap: int) -> list[str]:
    """Give up to `quota` pairs of `centre` to the oldest entries of its own list and its
    district's list (people a centre cancelled first, then in order of joining across
    both), inside the caller's transaction. Returns the booking codes assigned."""
    assigned: list[str] = []
    for _ in range(quota + SKIP_MARGIN):
        if len(assigned) >= quota:
            break
        # Race: two transactions freeing capacity at once each claim a different entry
        # (SKIP LOCKED); the status change below commits with the booking, so an entry is
        # served at most once.
        entry = await conn.fetchrow(
            "SELECT * FROM waitlist WHERE status = 'waiting'"
            " AND (centre = $1 OR (centre IS NULL AND district = $2))"
            " ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED", centre, district)
        if entry is None:
            break
        pair = await find_pair(conn, centre, earliest, min_gap, max_gap)
        if pair is None:
            break
        if await conn.fetchval(
                "SELECT 1 FROM bookings WHERE identity = $1 AND status = 'active'",
                entry["identity"]):
            # Booked directly meanwhile: one person, one booking; the pair goes on.
            await conn.execute("UPDATE waitlist SET status = 'skipped' WHERE seq = $1",
                               entry["seq"])
            continue
        # Race: a hold may take the pair between finding and taking it: look again.
        if not await take_pair(conn, centre, pair[0], pair[1], "booked"):
            continue
        code = new_code()
        try:
            async with conn.transaction():  # a savepoint: a refusal undoes only this
                await insert_booking(
                    conn, code=code, hold_id=None, centre=centre, district=district,
                    first_start=pair[0], second_start=pair[1], person=entry,
                    source="waitlist", now=now)
        except asyncpg.UniqueViolationError:
            # Race: the person booked directly in a transaction that committed after the
            # check above: the unique index keeps them at one booking; the pair goes on.
            await conn.execute(
                "UPDATE slots SET booked = booked - 1"
                " WHERE centre = $1 AND start_at = ANY($2::bigint[])", centre, list(pair))
            await conn.execute("UPDATE waitlist SET status = 'skipped' WHERE seq = $1",
                               entry["seq"])
            continue
        await conn.execute(
            "UPDATE waitlist SET status = 'assigned', booking = $2 WHERE seq = $1",
            entry["seq"], code)
        await outbox.enqueue(conn, "assigned", entry["channel"], entry["address"],
                             entry["lang"], now, booking=code, mid=f"wl-{code}")
        assigned.append(code)
    return assigned
