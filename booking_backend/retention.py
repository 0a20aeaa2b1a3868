"""Personal data kept only as long as needed: the purge, and the export of one person's data.

The purge (`booking-backend purge`, `POST /admin/purge`) removes names, birth dates and
contacts and records when (`purged_at`); the rows stay, so every count stays (units per
slot, bookings, stats, metrics). Its rules, with `days` = BOOKING_RETENTION_DAYS:

  bookings    active: the second appointment more than `days` ago;
              cancelled: cancelled more than `days` ago
  holds       ended (confirmed, expired, released, replaced) more than a day ago: a hold
              lives minutes, and a booking keeps its own copy
  waitlist    entries that left the list (assigned, skipped, booked): the booking made from
              one keeps its own copy; a waiting entry is kept while it waits
  outbox      pending messages about a purged booking or hold leave
  verifications  those of purged holds and bookings, and any past `forget_after`
  sessions, idempotency keys  past their time limit (as the sweeper does)

The identity HMAC (name and birth date, keyed) of a purged row is replaced by a marker
unique to the row: it no longer stands for a person, so it neither identifies them nor
keeps them from booking again (`bookings_one_active_per_person`). The invitation digest of
a booking stays: it identifies a letter, not a person, and keeps a letter to one booking.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from booking_backend.db import Connection, Database
from booking_backend.identity import format_code, is_code, normalise_code

Clock = Callable[[], float]
DAY = 86400
HOLD_KEEP_SECONDS = DAY  # an ended hold's birth date and identity leave after this

# What each rule selects; `$1` is now, `$2` the retention in seconds.
BOOKINGS_DUE = ("purged_at IS NULL AND ((status = 'active'"
                " AND second_start < $1::bigint - $2::bigint)"
                " OR (status = 'cancelled' AND cancelled_at < $1::bigint - $2::bigint))")
HOLDS_DUE = f"purged_at IS NULL AND status <> 'held' AND ended < $1::bigint - {HOLD_KEEP_SECONDS}"
WAITLIST_DUE = "purged_at IS NULL AND status <> 'waiting'"


async def purge(db: Database, now: int, days: int, *, dry_run: bool = False) -> dict[str, int]:
    """Purge what the rules select, in one transaction; returns how many rows of each kind
    were (or, with `dry_run`, would be) purged."""
    keep = days * DAY

    async def count(conn: Connection) -> dict[str, int]:
        return {
            "bookings": await conn.fetchval(
                f"SELECT count(*) FROM bookings WHERE {BOOKINGS_DUE}", now, keep),  # noqa: S608
            "holds": await conn.fetchval(
                f"SELECT count(*) FROM holds WHERE {HOLDS_DUE}", now),  # noqa: S608
            "waitlist": await conn.fetchval(
                f"SELECT count(*) FROM waitlist WHERE {WAITLIST_DUE}"),  # noqa: S608
        }

    if dry_run:
        return await db.transaction(count, snapshot=True)

    async def work(conn: Connection) -> dict[str, int]:
        # Race: a booking being cancelled or a hold being confirmed right now is locked by
        # that step; the purge waits for it and then sees the row as it ended.
        codes = [r["code"] for r in await conn.fetch(
            f"UPDATE bookings SET name = NULL, birth = NULL, channel = NULL, address = NULL,"  # noqa: S608
            f" identity = 'purged:' || code, purged_at = $1 WHERE {BOOKINGS_DUE}"
            f" RETURNING code", now, keep)]
        holds = [r["id"] for r in await conn.fetch(
            f"UPDATE holds SET birth = NULL, identity = NULL, name = NULL, channel = NULL,"  # noqa: S608
            f" address = NULL, invitation = '', owner = 'purged:' || id, purged_at = $1"
            f" WHERE {HOLDS_DUE} RETURNING id", now)]
        entries = await conn.fetchval(
            f"WITH p AS (UPDATE waitlist SET name = NULL, birth = NULL, channel = NULL,"  # noqa: S608
            f" address = NULL, invitation = '', identity = 'purged:' || id, purged_at = $1"
            f" WHERE {WAITLIST_DUE} RETURNING 1) SELECT count(*) FROM p", now)
        verifications = [f"cancel:{code}" for code in codes] + [f"hold:{h}" for h in holds]
        outbox = await conn.fetchval(
            "WITH d AS (DELETE FROM outbox WHERE booking = ANY($1::text[])"
            " OR verification = ANY($2::text[]) RETURNING 1) SELECT count(*) FROM d",
            codes, verifications)
        await conn.execute(
            "DELETE FROM verifications WHERE id = ANY($1::text[])"
            " OR (forget_after < $2 AND counting_until IS NULL)", verifications, now)
        await conn.execute("DELETE FROM sessions WHERE expires <= $1", now)
        await conn.execute("DELETE FROM idempotency_keys WHERE expires <= $1", now)
        return {"bookings": len(codes), "holds": len(holds), "waitlist": int(entries),
                "outbox": int(outbox)}

    return await db.transaction(work)


class NotFound(LookupError):
    """No booking with this code and birth date (which of the two was wrong is not said)."""


def _value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def record(row: asyncpg.Record, withheld: tuple[str, ...] = ()) -> dict[str, Any]:
    """A row as JSON, its columns by name; secrets (codes, code hashes) marked, not shown."""
    return {name: ("(withheld)" if name in withheld and value is not None else _value(value))
            for name, value in row.items()}


async def export(db: Database, code_raw: object, birth: dt.date) -> dict[str, Any]:
    """Everything stored about the person of a booking: found by booking code and birth
    date, then by the person's identity HMAC (every booking, hold and waiting entry of the
    person), and what hangs on those (pending messages, verifications, closures,
    sessions). Raises `NotFound`."""
    if not is_code(code_raw):
        raise NotFound
    assert isinstance(code_raw, str)
    code = format_code(normalise_code(code_raw))

    async def work(conn: Connection) -> dict[str, Any]:
        found = await conn.fetchrow(
            "SELECT identity, birth FROM bookings WHERE code = $1 AND purged_at IS NULL", code)
        # Same answer for a wrong code and a wrong birth date: no probing of codes.
        if found is None or not hmac.compare_digest(found["birth"].isoformat(),
                                                    birth.isoformat()):
            raise NotFound
        identity = found["identity"]
        bookings = await conn.fetch(
            "SELECT * FROM bookings WHERE identity = $1 ORDER BY created, code", identity)
        holds = await conn.fetch(
            "SELECT * FROM holds WHERE identity = $1 ORDER BY created, id", identity)
        entries = await conn.fetch(
            "SELECT * FROM waitlist WHERE identity = $1 ORDER BY seq", identity)
        codes = [r["code"] for r in bookings]
        vids = [f"cancel:{c}" for c in codes] + [f"hold:{r['id']}" for r in holds]
        outbox = await conn.fetch(
            "SELECT * FROM outbox WHERE booking = ANY($1::text[])"
            " OR verification = ANY($2::text[]) ORDER BY created, id", codes, vids)
        verifications = await conn.fetch(
            "SELECT * FROM verifications WHERE id = ANY($1::text[]) ORDER BY id", vids)
        closures = await conn.fetch(
            "SELECT id, centre, from_at, until_at, reason, created FROM closures"
            " WHERE id IN (SELECT closure FROM bookings WHERE identity = $1)"
            " ORDER BY id", identity)
        hold_ids = [r["id"] for r in holds]
        sessions = await conn.fetch(
            "SELECT data, expires FROM sessions WHERE data->>'booking' = ANY($1::text[])"
            " OR data->>'manage' = ANY($1::text[]) OR data->>'hold' = ANY($2::text[])"
            " ORDER BY expires", codes, hold_ids)
        return {
            "identity": identity,
            "bookings": [record(r) for r in bookings],
            "holds": [record(r) for r in holds],
            "waitlist": [record(r) for r in entries],
            "outbox": [record(r, ("code",)) for r in outbox],
            "verifications": [record(r, ("code_hash",)) for r in verifications],
            "closures": [record(r) for r in closures],
            "sessions": [{"data": json.loads(r["data"]), "expires": r["expires"]}
                         for r in sessions],
        }

    return await db.transaction(work, snapshot=True)
