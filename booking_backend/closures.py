"""Cancelling a range of a centre's appointments (a delivery failed, the centre must close).

One transaction (`Closures.close`) cancels every active booking with either dose in
[from, until), gives the doses outside the range back to the inventory, withdraws every unit
inside the range (`capacity` shrinks, `closed` grows: offers never see them again and the
never-oversold CHECK stays as it is), ends the live holds in the range, queues one notice per
person in the outbox and puts each person whose first dose is still ahead on their
district's waiting list with priority: the waiting-list filler then serves them before
anyone else, exactly once. `preview` counts the same without changing anything.

Race: bookers keep booking while a closure runs. Every way into the range takes a row lock
on one of its slots (a hold takes units, a confirmation relabels them, the filler takes
units), and the closure locks those rows: a booking that commits first is cancelled with
the rest, one that comes later finds no capacity. Holds and bookings are locked before the
slots, as a confirmation and a citizen's cancellation lock them (hold or booking, then
slots), so the common orders never deadlock; a rare one (a hold made and confirmed between
the two) is aborted by PostgreSQL and `Database.transaction` runs the closure again whole.
"""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from booking_backend import waitlist
from booking_backend.db import Connection, Database
from booking_backend.inventory import DAY, end_hold
from booking_backend.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]
REASON_MAX = 500  # closures.reason's CHECK
RANGE_MAX_DAYS = 92

# Bookings with either dose in the range ($2, $3 the range's ends).
_IN_RANGE = ("centre = $1 AND status = 'active' AND ((first_start >= $2 AND first_start < $3)"
             " OR (second_start >= $2 AND second_start < $3))")


class ClosureError(ValueError):
    """The operator's request cannot be carried out; the message says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    centre: str
    from_at: int
    until_at: int
    reason: str
    dry_run: bool


def parse_moment(raw: object, name: str, zone: zoneinfo.ZoneInfo) -> int:
    """An ISO date-time (local time in `zone` without an offset) or epoch seconds."""
    if isinstance(raw, bool):
        raise ClosureError(f"{name} must be an ISO date-time or epoch seconds")
    if isinstance(raw, int):
        if not 0 <= raw < 10**11:
            raise ClosureError(f"{name} is out of range")
        return raw
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 40:
        raise ClosureError(f"{name} must be an ISO date-time or epoch seconds")
    text = raw.strip()
    if text.isdigit():
        return parse_moment(int(text), name, zone)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ClosureError(f"{name} is not an ISO date-time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp())


def parse_reason(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ClosureError("reason is required: it is told to every person affected")
    reason = " ".join(unicodedata.normalize("NFC", raw).split())
    if len(reason) > REASON_MAX:
        raise ClosureError(f"reason must be at most {REASON_MAX} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in reason):
        raise ClosureError("reason must not hold control characters")
    return reason


def parse_request(centre: str, raw: object, zone: zoneinfo.ZoneInfo, now: int) -> Request:
    """Check an operator's request. A range reaching into the past starts now: what has
    happened is not cancelled."""
    if not isinstance(raw, dict):
        raise ClosureError("expected a JSON object with from, until and reason")
    from_at = parse_moment(raw.get("from"), "from", zone)
    until_at = parse_moment(raw.get("until"), "until", zone)
    if from_at >= until_at:
        raise ClosureError("from must lie before until")
    if until_at - from_at > RANGE_MAX_DAYS * DAY:
        raise ClosureError(f"a range may span at most {RANGE_MAX_DAYS} days")
    if until_at <= now:
        raise ClosureError("the range is over already")
    dry_run = raw.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ClosureError("dry_run must be true or false")
    return Request(centre, max(from_at, now), until_at, parse_reason(raw.get("reason")),
                   dry_run)


class Closures:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def now(self) -> int:
        return int(self.clock())

    async def district_of(self, centre: str) -> str:
        district: str | None = await self.db.fetchval(
            "SELECT district FROM centres WHERE id = $1", centre)
        if district is None:
            raise ClosureError(f"unknown centre {centre!r}", 404)
        return district

    async def preview(self, request: Request) -> dict[str, int]:
        """What `close` would do now: counted from one snapshot, nothing changed."""
        await self.district_of(request.centre)

        async def work(conn: Connection) -> dict[str, int]:
            return await _affected(conn, request, self.now())

        return await self.db.transaction(work, snapshot=True)

    async def close(self, request: Request) -> tuple[int, dict[str, int], list[str]]:
        """Cancel the range. Returns the closure's id, its counts and the booking codes the
        affected people were given at once (more follow as capacity frees)."""
        district = await self.district_of(request.centre)
        centre, lo, hi = request.centre, request.from_at, request.until_at
        min_gap = self.settings.second_dose_min_days * DAY
        max_gap = self.settings.second_dose_max_days * DAY

        async def work(conn: Connection) -> tuple[int, dict[str, int], list[str]]:
            now = self.now()
            cid: int = await conn.fetchval(
                "INSERT INTO closures (centre, from_at, until_at, reason, created)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id", centre, lo, hi, request.reason,
                now)
            # Holds and bookings first, then the slots: the order a confirmation and a
            # citizen's cancellation lock them in.
            holds_in = ("centre = $1 AND status = 'held' AND ((first_start >= $2 AND"
                        " first_start < $3) OR (second_start >= $2 AND second_start < $3))")
            await conn.execute(
                f"SELECT 1 FROM holds WHERE {holds_in} ORDER BY id FOR UPDATE",  # noqa: S608
                centre, lo, hi)
            await conn.execute(
                f"SELECT 1 FROM bookings WHERE {_IN_RANGE} ORDER BY code FOR UPDATE",  # noqa: S608
                centre, lo, hi)
            # From here no hold, confirmation or waiting-list assignment gets into the range
            # until this commits; afterwards the range has no capacity left.
            await conn.execute(
                "SELECT 1 FROM slots WHERE centre = $1 AND start_at >= $2 AND start_at < $3"
                " ORDER BY start_at FOR UPDATE", centre, lo, hi)
            # Again, under the slot locks: holds made between the first look and the locks.
            held = await conn.fetch(
                f"SELECT * FROM holds WHERE {holds_in} ORDER BY id FOR UPDATE",  # noqa: S608
                centre, lo, hi)
            for row in held:
                await end_hold(conn, row, "expired" if row["expires"] <= now else "released",
                               now)
            cancelled = await conn.fetch(
                f"UPDATE bookings SET status = 'cancelled', cancelled_at = $4, closure = $5"  # noqa: S608
                f" WHERE {_IN_RANGE} RETURNING code, identity, first_start, second_start",
                centre, lo, hi, now, cid)
            units: Counter[int] = Counter()
            for row in cancelled:
                units[row["first_start"]] += 1
                units[row["second_start"]] += 1
            starts = sorted(units)
            # Doses outside the range go back to the inventory; one already past is not
            # given back (its capacity goes with it, as with a citizen's cancellation).
            await conn.execute(
                "UPDATE slots s SET booked = s.booked - u.n, capacity = s.capacity"
                " - CASE WHEN s.start_at <= $4 AND NOT (s.start_at >= $5 AND s.start_at < $6)"
                " THEN u.n ELSE 0 END"
                " FROM unnest($2::bigint[], $3::integer[]) AS u(start_at, n)"
                " WHERE s.centre = $1 AND s.start_at = u.start_at",
                centre, starts, [units[s] for s in starts], now, lo, hi)
            # Every unit of the range is withdrawn: those just freed and those still free.
            closed = int(await conn.fetchval(
                "SELECT coalesce(sum(capacity - held - booked), 0) FROM slots"
                " WHERE centre = $1 AND start_at >= $2 AND start_at < $3", centre, lo, hi))
            await conn.execute(
                "UPDATE slots SET closed = closed + (capacity - held - booked),"
                " capacity = held + booked WHERE centre = $1 AND start_at >= $2"
                " AND start_at < $3", centre, lo, hi)
            # One notice per person, in their language, in this transaction (the outbox);
            # its id names the booking, so nobody is told twice.
            await conn.execute(
                "INSERT INTO outbox (id, kind, channel, address, lang, booking, reason, due,"
                " created) SELECT 'cc-' || code, CASE WHEN first_start > $2"
                " THEN 'centre_cancelled' ELSE 'centre_cancelled_second' END, channel,"
                " address, lang, code, $3, $2, $2 FROM bookings WHERE closure = $1",
                cid, now, request.reason)
            # First in line for a new pair, once: a priority entry on the district's list
            # (or their waiting entry, if they had one, moves to the front). Someone whose
            # first dose is past needs a second dose, not a pair: the centre calls them.
            reoffered = await conn.fetchval(
                "WITH e AS (INSERT INTO waitlist (id, identity, district, centre, status,"
                " invitation, name, birth, channel, address, lang, joined, priority, closure)"
                " SELECT replace(gen_random_uuid()::text, '-', ''), identity, district, NULL,"
                " 'waiting', invitation, name, birth, channel, address, lang, $2, 1, $1"
                " FROM bookings WHERE closure = $1 AND first_start > $2 ORDER BY created"
                " ON CONFLICT (identity) WHERE status = 'waiting'"
                " DO UPDATE SET priority = 1, closure = EXCLUDED.closure RETURNING 1)"
                " SELECT count(*) FROM e", cid, now)
            earliest = now + self.settings.booking_lead_seconds
            # The pairs this closure freed outside the range go to them first, now.
            assigned = await waitlist.assign(
                conn, centre, district, int(reoffered), now=now, earliest=earliest,
                min_gap=min_gap, max_gap=max_gap)
            await conn.execute(
                "UPDATE closures SET bookings = $2, units_closed = $3 WHERE id = $1",
                cid, len(cancelled), closed)
            counts = {
                "bookings": len(cancelled),
                "people": len({row["identity"] for row in cancelled}),
                "first_doses": sum(lo <= row["first_start"] < hi for row in cancelled),
                "second_doses": sum(lo <= row["second_start"] < hi for row in cancelled),
                "holds": len(held), "units_closed": closed, "reoffered": int(reoffered)}
            return cid, counts, assigned

        cid, counts, assigned = await self.db.transaction(work)
        log.info("closure %d at centre %s: %d bookings cancelled, %d units closed", cid,
                 centre, counts["bookings"], counts["units_closed"])
        # The other centres of the district, one short transaction each, for whoever is
        # still waiting: still before everyone else on those lists.
        others = await self.db.fetch(
            "SELECT id FROM centres WHERE district = $1 AND id <> $2 ORDER BY id",
            district, centre)
        for other in others:
            more = await self._serve(cid, other["id"], district, min_gap, max_gap)
            assigned.extend(more)
        counts["assigned"] = len(assigned)
        return cid, counts, assigned

    async def _serve(self, cid: int, centre: str, district: str, min_gap: int,
                     max_gap: int) -> list[str]:
        async def work(conn: Connection) -> list[str]:
            now = self.now()
            left = await conn.fetchval(
                "SELECT count(*) FROM waitlist WHERE closure = $1 AND status = 'waiting'", cid)
            if not left:
                return []
            return await waitlist.assign(
                conn, centre, district, int(left), now=now,
                earliest=now + self.settings.booking_lead_seconds, min_gap=min_gap,
                max_gap=max_gap)

        return await self.db.transaction(work)

    async def list(self, centre: str) -> list[dict[str, Any]]:
        await self.district_of(centre)
        rows = await self.db.fetch(
            "SELECT c.*, (SELECT count(*) FROM waitlist w WHERE w.closure = c.id"
            " AND w.status = 'waiting') AS still_waiting,"
            " (SELECT count(*) FROM waitlist w WHERE w.closure = c.id"
            " AND w.status = 'assigned') AS reassigned"
            " FROM closures c WHERE c.centre = $1 ORDER BY c.id", centre)
        return [{"id": r["id"], "centre": r["centre"], "from": r["from_at"],
                 "until": r["until_at"], "reason": r["reason"], "created": r["created"],
                 "bookings": r["bookings"], "units_closed": r["units_closed"],
                 "still_waiting": r["still_waiting"], "reassigned": r["reassigned"]}
                for r in rows]


async def _affected(conn: Connection, request: Request, now: int) -> dict[str, int]:
    """Who and what a closure of the range touches, read on `conn`."""
    centre, lo, hi = request.centre, request.from_at, request.until_at
    row = await conn.fetchrow(
        "SELECT count(*) AS bookings, count(DISTINCT identity) AS people,"  # noqa: S608
        " count(*) FILTER (WHERE first_start >= $2 AND first_start < $3) AS first_doses,"
        " count(*) FILTER (WHERE second_start >= $2 AND second_start < $3) AS second_doses,"
        " count(*) FILTER (WHERE first_start > $4) AS reoffered"
        " FROM bookings WHERE " + _IN_RANGE, centre, lo, hi, now)
    slots = await conn.fetchrow(
        "SELECT coalesce(sum(capacity), 0) AS capacity FROM slots WHERE centre = $1"
        " AND start_at >= $2 AND start_at < $3", centre, lo, hi)
    holds = await conn.fetchval(
        "SELECT count(*) FROM holds WHERE centre = $1 AND status = 'held' AND"
        " ((first_start >= $2 AND first_start < $3) OR (second_start >= $2 AND"
        " second_start < $3))", centre, lo, hi)
    assert row is not None and slots is not None
    return {"bookings": row["bookings"], "people": row["people"],
            "first_doses": row["first_doses"], "second_doses": row["second_doses"],
            "holds": holds, "units_to_close": int(slots["capacity"]),
            "reoffered": row["reoffered"]}
