"""Slots, offers, holds, bookings and cancellations: the inventory that must never oversell.

Every change is one PostgreSQL transaction (see `migrations/0001_initial.sql` for the rules
the schema holds): a hold takes both slots or neither, with conditional UPDATEs under the
`slots_never_oversold` CHECK; a confirmation relabels held units as booked; a cancellation
hands the pair to the waiting list in the same transaction (`waitlist.assign`); expired
holds give their units back (the sweeper, and any hold that finds a pair gone).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import asyncpg

from booking_backend import outbox, waitlist
from booking_backend.catalogue import Catalogue, Centre
from booking_backend.db import Connection, Database, StoreUnavailable
from booking_backend.identity import new_code
from booking_backend.settings import Settings
from booking_backend.slots import insert_booking, lock_units, take_pair

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DAY = 86400
# Expired holds a hold gives back at once when its pair is gone, as the sweeper would.
EXPIRE_WITH_HOLD = 100

# Per centre ($1, in order), the earliest free first-dose slots in [$2, $3] (a time of day:
# $7 true, local hours $9..$10 in zone $8; $6 at most), each with the earliest free second
# one $4..$5 seconds later. Both lookups are range scans of `slots_open`.
OFFERS_SQL = (
    "SELECT c.centre, f.start_at AS first, s.start_at AS second"
    " FROM unnest($1::text[]) WITH ORDINALITY AS c(centre, n)"
    " CROSS JOIN LATERAL (SELECT start_at FROM slots f WHERE f.centre = c.centre"
    "  AND f.start_at BETWEEN $2 AND $3 AND f.held + f.booked < f.capacity"
    # Without a time of day ($7 false) the hours are not computed at all.
    "  AND (NOT $7 OR extract(hour FROM to_timestamp(f.start_at) AT TIME ZONE $8)"
    "   BETWEEN $9 AND $10)"
    "  ORDER BY f.start_at LIMIT $6) f"
    " CROSS JOIN LATERAL (SELECT start_at FROM slots s WHERE s.centre = c.centre"
    "  AND s.start_at BETWEEN f.start_at + $4 AND f.start_at + $5"
    "  AND s.held + s.booked < s.capacity ORDER BY s.start_at LIMIT 1) s"
    " ORDER BY c.n, f.start_at"
)

# The first $7 days (in zone $6) with a free pair at these centres ($1), first doses in
# [$2, $3]. Each day's first free pair is the earliest of each centre's first in index order
# (`slots_open`); the next day's search starts at the next midnight. A few short index scans
# per day, never every free slot of the weeks.
OFFER_DAYS_SQL = (
    "WITH RECURSIVE found(first, n) AS ("
    " SELECT"
    "(SELECT min(x.first) FROM unnest($1::text[]) AS c(centre)"
    " CROSS JOIN LATERAL (SELECT f.start_at AS first FROM slots f WHERE f.centre = c.centre"
    "  AND f.start_at BETWEEN $2 AND $3 AND f.held + f.booked < f.capacity"
    "  AND EXISTS (SELECT 1 FROM slots s WHERE s.centre = f.centre"
    "   AND s.start_at BETWEEN f.start_at + $4 AND f.start_at + $5"
    "   AND s.held + s.booked < s.capacity)"
    "  ORDER BY f.start_at LIMIT 1) x)"
    ", 1 UNION ALL SELECT"
    "(SELECT min(x.first) FROM unnest($1::text[]) AS c(centre)"
    " CROSS JOIN LATERAL (SELECT f.start_at AS first FROM slots f WHERE f.centre = c.centre"
    "  AND f.start_at BETWEEN "
    "   (SELECT extract(epoch FROM (date_trunc('day', to_timestamp(d.first) AT TIME ZONE $6)"
    "    + interval '1 day') AT TIME ZONE $6)::bigint)"
    "   AND $3 AND f.held + f.booked < f.capacity"
    "  AND EXISTS (SELECT 1 FROM slots s WHERE s.centre = f.centre"
    "   AND s.start_at BETWEEN f.start_at + $4 AND f.start_at + $5"
    "   AND s.held + s.booked < s.capacity)"
    "  ORDER BY f.start_at LIMIT 1) x)"
    ", d.n + 1 FROM found d WHERE d.first IS NOT NULL AND d.n < $7)"
    " SELECT (to_timestamp(first) AT TIME ZONE $6)::date AS day FROM found"
    " WHERE first IS NOT NULL ORDER BY first"
)


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    start: int
    centre: str

    @property
    def id(self) -> str:
        return f"{self.centre}@{self.start}"

    @classmethod
    def parse(cls, sid: object) -> Slot | None:
        if not isinstance(sid, str) or len(sid) > 120 or "@" not in sid:
            return None
        centre, _, start = sid.rpartition("@")
        if not centre or not (start.isascii() and start.isdigit()) or len(start) > 11:
            return None
        return cls(int(start), centre)


@dataclass(frozen=True, slots=True)
class Offer:
    centre: Centre
    first: Slot
    second: Slot


@dataclass(frozen=True, slots=True)
class OfferDay:
    """A day (in the deployment's zone) with at least one free pair."""

    day: dt.date


@dataclass(frozen=True, slots=True)
class Hold:
    hid: str
    first: Slot
    second: Slot
    centre: str
    expires: int
    status: str  # held | confirmed | expired | released | replaced
    booking: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Booking:
    code: str
    first: Slot
    second: Slot
    centre: str
    district: str
    status: str  # active | cancelled
    name: str
    birth: str
    channel: str
    address: str
    lang: str
    source: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Booking:
        centre = row["centre"]
        return cls(
            row["code"], Slot(row["first_start"], centre), Slot(row["second_start"], centre),
            centre, row["district"], row["status"], row["name"], row["birth"].isoformat(),
            row["channel"], row["address"], row["lang"], row["source"],
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step said: `status` is a stable code, `value` an id or booking code."""

    status: str
    value: str = ""
    extra: tuple[str, ...] = ()


class _PairGone(Exception):
    """Raised inside a hold's transaction to roll it back whole (the previous hold stays)."""


HOLD_FIELDS = ("birth", "district", "home_district", "invitation", "inv_min_age", "lang",
               "identity", "name", "channel", "address")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


async def end_hold(conn: Connection, row: asyncpg.Record, status: str, now: int) -> None:
    """End a live hold whose row this transaction locked and give both units back. An
    expiry is counted here, in the step that ends the hold: whoever ends it (the sweeper,
    the next hold, a late confirmation) counts it exactly once."""
    await lock_units(conn, row["centre"], [row["first_start"], row["second_start"]])
    await conn.execute(
        "UPDATE slots SET held = held - 1 WHERE centre = $1 AND start_at = ANY($2::bigint[])",
        row["centre"], [row["first_start"], row["second_start"]])
    await conn.execute("UPDATE holds SET status = $2, ended = $3 WHERE id = $1",
                       row["id"], status, now)
    if status == "expired":
        await conn.execute(
            "UPDATE counters SET value = value + 1 WHERE name = 'holds_expired'")


class Inventory:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.min_gap = settings.second_dose_min_days * DAY
        self.max_gap = settings.second_dose_max_days * DAY

    def now(self) -> int:
        return int(self.clock())

    def first_window(self) -> tuple[int, int]:
        """When a first dose may start: not before the lead time, not after the search range."""
        now = self.now()
        return now + self.settings.booking_lead_seconds, now + self.settings.search_days * DAY

    async def offers(self, centres: Iterable[Centre], *, within: tuple[int, int] | None = None,
                     hours: tuple[int, int] | None = None,
                     per_centre: int | None = None) -> list[Offer]:
        """For each centre, the earliest first-dose slots each with the earliest second-dose
        slot inside the interval, in one query. `within` narrows the first doses to a day
        (epoch seconds, `days.DayChoice.window`), `hours` to a time of day (local wall-clock
        hours [from, to)); `per_centre` replaces BOOKING_OFFERS_PER_CENTRE. Both narrow the
        scan of the free slots' partial index (`slots_open`: centre, start). Showing is not
        holding: a shown pair can be gone a moment later, and `hold` says so."""
        earliest, latest = self.first_window()
        if within is not None:
            earliest, latest = max(earliest, within[0]), min(latest, within[1])
        listed = list(centres)
        if not listed or earliest > latest:
            return []
        per_centre = per_centre or self.settings.offers_per_centre
        first_hour, end_hour = hours or (0, 24)
        rows = await self.db.fetch(
            OFFERS_SQL,
            [c.id for c in listed], earliest, latest, self.min_gap, self.max_gap,
            per_centre * 4, hours is not None, self.settings.timezone, first_hour, end_hour - 1)
        by_id = {c.id: c for c in listed}
        taken: collections.Counter[str] = collections.Counter()
        result: list[Offer] = []
        for row in rows:
            cid = row["centre"]
            if taken[cid] >= per_centre:
                continue
            taken[cid] += 1
            result.append(Offer(by_id[cid], Slot(row["first"], cid), Slot(row["second"], cid)))
        return result

    async def offer_days(self, centres: Iterable[Centre], limit: int) -> list[OfferDay]:
        """The first `limit` days (in the deployment's zone) on which these centres have a
        free pair (OFFER_DAYS_SQL: per day a few scans of the free slots' index)."""
        earliest, latest = self.first_window()
        listed = [c.id for c in centres]
        if not listed:
            return []
        rows = await self.db.fetch(
            OFFER_DAYS_SQL,
            listed, earliest, latest, self.min_gap, self.max_gap, self.settings.timezone, limit)
        return [OfferDay(row["day"]) for row in rows]

    def first_days(self) -> tuple[dt.date, dt.date]:
        """The first and last day (in the deployment's zone) a first dose may be on."""
        zone = zoneinfo.ZoneInfo(self.settings.timezone)
        earliest, latest = self.first_window()
        return (dt.datetime.fromtimestamp(earliest, zone).date(),
                dt.datetime.fromtimestamp(latest, zone).date())

    async def hold(
        self, first: Slot, second: Slot, owner: str, fields: Mapping[str, str]
    ) -> Outcome:
        """Hold both slots at once; the owner's previous hold is given back (and kept if the
        new pair is gone: the transaction rolls back whole)."""
        if first.centre != second.centre:
            return Outcome("invalid", "", ("centre",))
        gap = second.start - first.start
        if gap < self.min_gap or gap > self.max_gap:
            return Outcome("invalid", "", ("interval",))
        earliest, latest = self.first_window()
        if not earliest <= first.start <= latest:
            return Outcome("invalid", "", ("time",))
        hid = secrets.token_urlsafe(16)
        inv_min_age = fields.get("inv_min_age", "")

        async def work(conn: Connection) -> tuple[int, bool]:
            now = self.now()
            expires = now + self.settings.hold_seconds
            # Race: two requests of one visitor holding at once take turns here, so the
            # second finds the first's hold as its previous one and gives it back.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                               f"hold-owner:{owner}")
            previous = await conn.fetchrow(
                "SELECT * FROM holds WHERE owner = $1 AND status = 'held' FOR UPDATE", owner)
            if previous is not None:
                # One live hold per visitor: one admission cannot hoard many pairs.
                await end_hold(conn, previous,
                               "expired" if previous["expires"] <= now else "replaced", now)
            if not await take_pair(conn, first.centre, first.start, second.start, "held"):
                raise _PairGone
            await conn.execute(
                "INSERT INTO holds (id, owner, centre, first_start, second_start, expires,"
                " status, birth, district, home_district, invitation, inv_min_age, lang,"
                " created) VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8, $9, $10, $11,"
                " $12, $13)",
                hid, owner, first.centre, first.start, second.start, expires,
                dt.date.fromisoformat(fields["birth"]), fields.get("district", ""),
                fields.get("home_district", ""), fields.get("invitation", ""),
                int(inv_min_age) if inv_min_age else None, fields.get("lang", "de"), now)
            return expires, await self._expired_waiting(conn, now)

        for attempt in range(2):
            try:
                expires, expired_waiting = await self.db.transaction(work)
            except _PairGone:
                # Holds whose time ran out give their units back now, even if the sweeper
                # lags; the gone pair may be among them, so it is tried once more.
                if attempt == 0 and await self.sweep(EXPIRE_WITH_HOLD):
                    continue
                return Outcome("gone")
            if expired_waiting:
                # As the sweeper would, without its lag; best effort: the hold is made, and a
                # failure here leaves the expired holds to the sweeper.
                try:
                    await self.sweep(EXPIRE_WITH_HOLD)
                except StoreUnavailable as exc:
                    log.warning("sweep after a hold failed, left to the sweeper: %s", exc)
            return Outcome("ok", hid, (str(expires),))
        return Outcome("gone")

    @staticmethod
    async def _expired_waiting(conn: Connection, now: int) -> bool:
        """Whether holds whose time ran out still wait for the sweeper."""
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM holds WHERE status = 'held' AND expires <= $1)",
            now))

    async def get_hold(self, hid: str, owner: str) -> Hold | None:
        if not hid or len(hid) > 64:
            return None
        row = await self.db.fetchrow("SELECT * FROM holds WHERE id = $1", hid)
        if row is None or row["owner"] != owner:
            return None
        status = row["status"]
        if status == "held" and row["expires"] <= self.now():
            status = "expired"  # the sweeper or the next hold returns its units
        centre = row["centre"]
        return Hold(hid, Slot(row["first_start"], centre), Slot(row["second_start"], centre),
                    centre, row["expires"], status, row["booking"] or "",
                    {name: _text(row[name]) for name in HOLD_FIELDS})

    async def release(self, hid: str, owner: str) -> bool:
        """Give a live hold back; False when it was not live or not theirs."""

        async def work(conn: Connection) -> bool:
            row = await conn.fetchrow(
                "SELECT * FROM holds WHERE id = $1 AND owner = $2 AND status = 'held'"
                " FOR UPDATE", hid, owner)
            if row is None:
                return False
            await end_hold(conn, row, "released", self.now())
            return True

        return await self.db.transaction(work)

    async def attach_person(
        self, hid: str, owner: str, identity: str, fields: Mapping[str, str]
    ) -> Outcome:
        """Name and contact on a live hold: ok | not_found | expired | already_booked |
        confirmed (value: the booking code)."""

        async def work(conn: Connection) -> Outcome:
            row = await conn.fetchrow(
                "SELECT owner, status, expires, booking FROM holds WHERE id = $1 FOR UPDATE",
                hid)
            if row is None or row["owner"] != owner:
                return Outcome("not_found")
            if row["booking"]:
                return Outcome("confirmed", row["booking"])
            if row["status"] != "held" or row["expires"] <= self.now():
                return Outcome("expired")
            # Early, friendly answer; the unique index refuses it again when it books.
            if await conn.fetchval(
                    "SELECT 1 FROM bookings WHERE identity = $1 AND status = 'active'",
                    identity):
                return Outcome("already_booked")
            await conn.execute(
                "UPDATE holds SET identity = $2, name = $3, channel = $4, address = $5,"
                " lang = $6 WHERE id = $1", hid, identity, fields["name"], fields["channel"],
                fields["address"], fields.get("lang", "de"))
            return Outcome("ok")

        return await self.db.transaction(work)

    async def confirm(self, hid: str, owner: str, source: str) -> Outcome:
        """Book a verified hold. Retrying returns the same booking code ("existing")."""

        async def work(conn: Connection) -> Outcome:
            now = self.now()
            # Race: a double click, a retry or another process confirming the same hold
            # waits for this row lock and then finds the booking made.
            h = await conn.fetchrow("SELECT * FROM holds WHERE id = $1 FOR UPDATE", hid)
            if h is None or h["owner"] != owner:
                return Outcome("not_found")
            if h["booking"]:
                return Outcome("ok", h["booking"], ("existing",))
            if h["status"] != "held" or h["expires"] <= now:
                if h["status"] == "held":
                    await end_hold(conn, h, "expired", now)
                return Outcome("expired")
            verified = await conn.fetchrow(
                "SELECT status, subject FROM verifications WHERE id = $1",
                hold_verification(hid))
            if verified is None or verified["status"] != "verified" \
                    or verified["subject"] != hid:
                return Outcome("unverified")
            if not h["identity"]:
                return Outcome("no_details")
            if h["invitation"] and not await conn.fetchval(
                    "SELECT 1 FROM invitations WHERE digest = $1", h["invitation"]):
                return Outcome("invitation_invalid")
            code = new_code()
            try:
                async with conn.transaction():  # a savepoint: a refusal undoes only this
                    await insert_booking(
                        conn, code=code, hold_id=hid, centre=h["centre"],
                        district=h["district"], first_start=h["first_start"],
                        second_start=h["second_start"], person=h, source=source, now=now)
            except asyncpg.UniqueViolationError:
                # Race: two holds of one person (or one invitation) confirming at once:
                # the partial unique index lets exactly one of them book.
                return Outcome("already_booked")
            await conn.execute(
                "UPDATE holds SET status = 'confirmed', booking = $2, ended = $3"
                " WHERE id = $1", hid, code, now)
            # The units were taken when the hold was made: confirming only relabels them,
            # so nothing can be oversold here and once this commits the booking stands.
            await lock_units(conn, h["centre"], [h["first_start"], h["second_start"]])
            await conn.execute(
                "UPDATE slots SET held = held - 1, booked = booked + 1"
                " WHERE centre = $1 AND start_at = ANY($2::bigint[])",
                h["centre"], [h["first_start"], h["second_start"]])
            # Whoever booked directly no longer waits: their waiting-list place is freed.
            await conn.execute(
                "UPDATE waitlist SET status = 'booked', booking = $2"
                " WHERE identity = $1 AND status = 'waiting'", h["identity"], code)
            # The booking code also goes to the person's phone or mailbox, in this step.
            await outbox.enqueue(conn, "booked", h["channel"], h["address"], h["lang"], now,
                                 booking=code, mid=f"bk-{code}")
            return Outcome("ok", code, ("new",))

        return await self.db.transaction(work)

    async def booking(self, code: str) -> Booking | None:
        # A purged booking has no name, birth date or contact left: it is found no more.
        row = await self.db.fetchrow(
            "SELECT * FROM bookings WHERE code = $1 AND purged_at IS NULL", code)
        return None if row is None else Booking.from_row(row)

    async def cancel(self, booking: Booking) -> Outcome:
        """Cancel; the pair goes to the waiting list first, in the same transaction."""

        async def work(conn: Connection) -> Outcome:
            now = self.now()
            # Race: two cancellations of one booking: the second finds it cancelled.
            row = await conn.fetchrow(
                "UPDATE bookings SET status = 'cancelled', cancelled_at = $2"
                " WHERE code = $1 AND status = 'active'"
                " RETURNING centre, district, first_start, second_start", booking.code, now)
            if row is None:
                return Outcome("not_active")
            # An appointment already past is not given back: its capacity goes with it.
            await lock_units(conn, row["centre"], [row["first_start"], row["second_start"]])
            await conn.execute(
                "UPDATE slots SET booked = booked - 1,"
                " capacity = capacity - (start_at <= $3)::integer"
                " WHERE centre = $1 AND start_at = ANY($2::bigint[])",
                row["centre"], [row["first_start"], row["second_start"]], now)
            earliest, _ = self.first_window()
            # In the same transaction, so no direct booker can take the pair first.
            assigned = await waitlist.assign(
                conn, row["centre"], row["district"], 1, now=now, earliest=earliest,
                min_gap=self.min_gap, max_gap=self.max_gap)
            return Outcome("ok", "", tuple(assigned))

        return await self.db.transaction(work)

    async def release_slots(
        self, centre: Centre, slots: Iterable[tuple[Slot, int]], *, share: float | None = None
    ) -> Outcome:
        """Add capacity at one centre; `share` of the new pairs (default: the setting) goes
        to the waiting list in the same transaction. Returns units added and codes assigned."""
        units_by_start: collections.Counter[int] = collections.Counter()
        for slot, count in slots:
            if slot.centre == centre.id and count > 0:
                units_by_start[slot.start] += count
        units = sum(units_by_start.values())
        if not units:
            return Outcome("ok", "0")
        share = self.settings.waitlist_share if share is None else share
        quota = int(share * (units // 2) + 0.5)  # a pair takes two units
        starts = sorted(units_by_start)

        async def work(conn: Connection) -> Outcome:
            now = self.now()
            await conn.execute(
                "INSERT INTO slots (centre, start_at, capacity)"
                " SELECT $1, s, c FROM unnest($2::bigint[], $3::integer[]) AS u(s, c)"
                " ON CONFLICT (centre, start_at)"
                " DO UPDATE SET capacity = slots.capacity + EXCLUDED.capacity",
                centre.id, starts, [units_by_start[s] for s in starts])
            assigned: list[str] = []
            if quota > 0:
                earliest, _ = self.first_window()
                assigned = await waitlist.assign(
                    conn, centre.id, centre.district, quota, now=now, earliest=earliest,
                    min_gap=self.min_gap, max_gap=self.max_gap)
            return Outcome("ok", str(units), tuple(assigned))

        return await self.db.transaction(work)

    async def sweep(self, limit: int = 500) -> int:
        """Expire up to `limit` holds whose time ran out; returns how many this call ended."""

        async def work(conn: Connection) -> int:
            now = self.now()
            # Race: a hold being confirmed or released right now is locked and skipped (the
            # other transaction decides it); one that stopped being held is not selected.
            rows = await conn.fetch(
                "SELECT id, centre, first_start, second_start FROM holds"
                " WHERE status = 'held' AND expires <= $1 ORDER BY expires LIMIT $2"
                " FOR UPDATE SKIP LOCKED", now, limit)
            if not rows:
                return 0
            units: collections.Counter[tuple[str, int]] = collections.Counter()
            for row in rows:
                units[(row["centre"], row["first_start"])] += 1
                units[(row["centre"], row["second_start"])] += 1
            keys = sorted(units)
            await conn.execute(
                "UPDATE slots s SET held = s.held - u.n"
                " FROM unnest($1::text[], $2::bigint[], $3::integer[]) AS u(centre, start_at, n)"
                " WHERE s.centre = u.centre AND s.start_at = u.start_at",
                [k[0] for k in keys], [k[1] for k in keys], [units[k] for k in keys])
            await conn.execute(
                "UPDATE holds SET status = 'expired', ended = $2 WHERE id = ANY($1::text[])",
                [row["id"] for row in rows], now)
            await conn.execute(
                "UPDATE counters SET value = value + $1 WHERE name = 'holds_expired'",
                len(rows))
            return len(rows)

        return await self.db.transaction(work)

    async def forget_ended(self, older_than: int = 3600) -> int:
        """Name and contact leave holds that ended more than `older_than` seconds ago: a
        booking keeps its own copy, and an ended hold needs none."""
        status = await self.db.execute(
            "UPDATE holds SET name = NULL, channel = NULL, address = NULL"
            " WHERE status <> 'held' AND ended < $1 AND name IS NOT NULL",
            self.now() - older_than)
        return int(status.rsplit(" ", 1)[-1])

    async def is_empty(self) -> bool:
        return not await self.db.fetchval("SELECT EXISTS (SELECT 1 FROM slots)")


def hold_verification(hid: str) -> str:
    """The verification id of a hold's code (one code per hold)."""
    return f"hold:{hid}"


def cancel_verification(code: str) -> str:
    return f"cancel:{code}"


def generate_slots(
    catalogue: Catalogue,
    first_day: dt.date,
    days: int,
    *,
    tz: str = "Europe/Berlin",
    opening_hours: tuple[int, int] = (8, 18),
    step_minutes: int = 30,
    units: int = 2,
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4, 5}),
) -> dict[str, list[tuple[Slot, int]]]:
    """Demo slots: every centre open Monday to Saturday, a slot every half hour."""
    zone = zoneinfo.ZoneInfo(tz)
    per_centre: dict[str, list[tuple[Slot, int]]] = {cid: [] for cid in catalogue.centres}
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        if day.weekday() not in weekdays:
            continue
        minute = opening_hours[0] * 60
        while minute < opening_hours[1] * 60:
            start = dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60,
                                tzinfo=zone)
            epoch = int(start.timestamp())
            for cid in per_centre:
                per_centre[cid].append((Slot(epoch, cid), units))
            minute += step_minutes
    return per_centre


def parse_slot_document(
    raw: object, catalogue: Catalogue, tz: str
) -> dict[str, list[tuple[Slot, int]]]:
    """Slots from an operator's JSON: `{"slots": [{"centre": id, "start": ISO time or epoch,
    "capacity": n}, ...]}` (a time without offset is local time in `tz`)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("slots"), list):
        raise ValueError("expected an object with a list `slots`")
    zone = zoneinfo.ZoneInfo(tz)
    result: dict[str, list[tuple[Slot, int]]] = {}
    for i, item in enumerate(raw["slots"]):
        if not isinstance(item, dict):
            raise ValueError(f"slots[{i}] must be an object")
        centre, start, units = item.get("centre"), item.get("start"), item.get("capacity", 1)
        if not isinstance(centre, str) or centre not in catalogue.centres:
            raise ValueError(f"slots[{i}].centre is not a known centre")
        if isinstance(start, bool) or not isinstance(units, int) or isinstance(units, bool):
            raise ValueError(f"slots[{i}] has a bad start or capacity")
        if not 1 <= units <= 1000:
            raise ValueError(f"slots[{i}].capacity must be 1 to 1000")
        if isinstance(start, int):
            epoch = start
        elif isinstance(start, str):
            try:
                moment = dt.datetime.fromisoformat(start)
            except ValueError as exc:
                raise ValueError(f"slots[{i}].start is not an ISO date-time") from exc
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
            epoch = int(moment.timestamp())
        else:
            raise ValueError(f"slots[{i}].start must be an ISO date-time or epoch seconds")
        result.setdefault(centre, []).append((Slot(epoch, centre), units))
    return result
