"""Slots, offers, holds, bookings and cancellations: the inventory that must never oversell.

All changes to capacity happen inside Lua scripts (see `lua/`), each one atomic step:
hold (both doses at once), release, confirm, cancel (waiting list first), release of new
slots (share to the waiting list), sweep of expired holds. Where a script needs keys that
only the data names (expired holds, the head of a waiting list, an owner's previous hold,
a person's waiting entry), this module reads them first or learns them from the script's
first answer, and the script checks they are still what was seen (see store.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from booking_backend.catalogue import Catalogue, Centre
from booking_backend.identity import new_code
from booking_backend.settings import Settings
from booking_backend.store import (
    MAX_ATTEMPTS,
    Store,
    StoreConflict,
    StoreUnavailable,
    parse_centre_counts,
    text,
)
from vaccine_queue.lua import Reply

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DAY = 86400
# Expired holds a hold gives back at once (hold-10.lua reports them), as the sweeper would.
EXPIRE_WITH_HOLD = 100
# Waiting entries declared beyond a quota, for entries a script skips (the person booked
# directly meanwhile); more skips than this leave the rest to the next release.
WAITLIST_MARGIN = 10


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
        if not centre or not start.isdigit() or len(start) > 11:
            return None
        return cls(int(start), centre)


@dataclass(frozen=True, slots=True)
class Offer:
    centre: Centre
    first: Slot
    second: Slot


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
    def from_hash(cls, raw: Mapping[str, str]) -> Booking | None:
        first, second = Slot.parse(raw.get("first")), Slot.parse(raw.get("second"))
        if first is None or second is None or "code" not in raw:
            return None
        return cls(
            raw["code"], first, second, raw.get("centre", first.centre),
            raw.get("district", ""), raw.get("status", ""), raw.get("name", ""),
            raw.get("birth", ""), raw.get("channel", ""), raw.get("address", ""),
            raw.get("lang", "de"), raw.get("source", ""),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a script said: `status` is a stable code, `value` an id or booking code."""

    status: str
    value: str = ""
    extra: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpiredHold:
    """A hold the expiry index lists as run out, with the owner and centre whose keys
    sweep-n.lua must declare ("" when its HASH was gone)."""

    hid: str
    owner: str
    centre: str


@dataclass(frozen=True, slots=True)
class WaitingHeads:
    """The entries a script that may serve up to `quota` waiting pairs expects at the head
    of a centre's and of its district's waiting list: it declares their keys, and checks
    that the lists still start with them (cancel-n.lua, release_slots-n.lua)."""

    centre: str
    district: str
    window: int  # how many entries of each list's head count; 0: the lists are not used
    centre_ids: tuple[str, ...]
    district_ids: tuple[str, ...]

    @classmethod
    def expect_empty(cls, centre: str, district: str, quota: int) -> WaitingHeads:
        """A first guess: nobody waits. The window reaches `quota` entries and a margin."""
        return cls(centre, district, quota + WAITLIST_MARGIN if quota > 0 else 0, (), ())

    def found(self, reply: Reply) -> WaitingHeads:
        """The heads a script's `retry` answer says the lists start with now."""
        return WaitingHeads(self.centre, self.district, self.window,
                            tuple(reply.text("centre_ids").split()),
                            tuple(reply.text("district_ids").split()))

    @property
    def count(self) -> int:
        return len(self.centre_ids) + len(self.district_ids)


class Inventory:
    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.keys = store.keys
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

    async def offers(self, centres: Iterable[Centre]) -> list[Offer]:
        """For each centre, the earliest first-dose slots each with the earliest second-dose
        slot inside the interval: one read-only script for all centres (offers-n.lua).
        Showing is not holding: a shown pair can be gone a moment later, and hold-10.lua
        says so."""
        earliest, latest = self.first_window()
        listed = list(centres)
        if not listed:
            return []
        per_centre = self.settings.offers_per_centre
        cfree = [self.keys.cfree(c.id) for c in listed]
        reply = await self.store.run(
            self.store.offers_script, cfree,
            [earliest, latest, self.min_gap, self.max_gap, per_centre, per_centre * 4])
        result: list[Offer] = []
        for centre, key in zip(listed, cfree, strict=True):
            starts = reply.text(key).split()
            for i in range(0, len(starts) - 1, 2):
                result.append(Offer(centre, Slot(int(starts[i]), centre.id),
                                    Slot(int(starts[i + 1]), centre.id)))
        return result

    async def hold(
        self, first: Slot, second: Slot, owner: str, fields: Mapping[str, str]
    ) -> Outcome:
        """Hold both slots at once (hold-10.lua); the owner's previous hold is given back."""
        hid = secrets.token_urlsafe(16)
        flat: list[str] = []
        for key, value in fields.items():
            flat += [key, value]
        keys = self.keys
        previous, previous_centre = "", first.centre
        swept = False
        for _ in range(MAX_ATTEMPTS):
            now = self.now()
            expires = now + self.settings.hold_seconds
            earliest, latest = self.first_window()
            reply = await self.store.run(
                self.store.hold_script,
                [*keys.inventory, keys.hold(hid), keys.cfree(first.centre), keys.owner(owner),
                 keys.hold(previous or hid), keys.cfree(previous_centre)],
                [now, hid, first.id, second.id, expires, owner, self.min_gap, self.max_gap,
                 earliest, latest, previous, *flat],
            )
            outcome = reply.text("outcome")
            if outcome == "previous":
                # Race: the owner's hold is not the one we expected (a first try expects none,
                # or another request of theirs held meanwhile): declare that one, try again.
                previous = reply.text("previous")
                centre = await self.store.hget(keys.hold(previous), "centre") if previous \
                    else None
                previous_centre = centre or first.centre
                continue
            if outcome in ("ok", "gone") and reply.flag("expired_holds"):
                # Holds whose time ran out give their units back now, even if the sweeper
                # lags; a gone pair may be among them, so it is tried once more.
                expired = await self._sweep_quietly()
                if outcome == "gone" and expired and not swept:
                    swept = True
                    continue
            if outcome == "ok":
                return Outcome("ok", hid, (str(expires),))
            if outcome == "invalid":
                return Outcome("invalid", "", (reply.text("why"),))
            return Outcome(outcome)
        raise StoreConflict("hold-10.lua: the owner's hold kept changing")

    async def get_hold(self, hid: str, owner: str) -> Hold | None:
        if not hid or len(hid) > 64:
            return None
        raw = await self.store.hgetall(self.keys.hold(hid))
        first, second = Slot.parse(raw.get("first")), Slot.parse(raw.get("second"))
        if raw.get("owner") != owner or first is None or second is None:
            return None
        status = raw.get("status", "")
        expires = int(raw.get("expires", "0"))
        if status == "held" and expires <= self.now():
            status = "expired"  # the sweeper or the next hold returns its units
        return Hold(hid, first, second, raw.get("centre", ""), expires, status,
                    raw.get("booking", ""), raw)

    async def release(self, hid: str, owner: str) -> bool:
        """Give a live hold back (release-8.lua); False when it was not live or not theirs."""
        centre = await self.store.hget(self.keys.hold(hid), "centre")
        if centre is None:
            return False
        reply = await self.store.run(
            self.store.release_script,
            [*self.keys.inventory, self.keys.hold(hid), self.keys.owner(owner),
             self.keys.cfree(centre)],
            [hid, owner, centre],
        )
        return reply.text("outcome") == "released"

    async def attach_person(
        self, hid: str, owner: str, identity: str, fields: Mapping[str, str]
    ) -> Outcome:
        flat: list[str] = []
        for key, value in fields.items():
            flat += [key, value]
        reply = await self.store.run(
            self.store.hold_details_script, [self.keys.hold(hid), self.keys.identities],
            [self.now(), owner, identity, *flat],
        )
        outcome = reply.text("outcome")
        return Outcome(outcome, reply.text("booking") if outcome == "confirmed" else "")

    async def confirm(self, hid: str, owner: str, source: str) -> Outcome:
        """Book a verified hold. Retrying returns the same booking code ("existing")."""
        keys = self.keys
        code = new_code()
        centre, entry, entry_list = "", "", ""
        for _ in range(MAX_ATTEMPTS):
            hold = keys.hold(hid)
            reply = await self.store.run(
                self.store.confirm_script,
                [*keys.booking_shared, hold, keys.verif(hold_verification(hid)), keys.booking(code),
                 keys.msg(f"bk-{code}"), keys.owner(owner), keys.invitations,
                 keys.cfree(centre) if centre else hold,
                 keys.wl_entry(entry) if entry else hold, entry_list or hold],
                [self.now(), hid, owner, code, source, centre, entry],
            )
            outcome = reply.text("outcome")
            if outcome == "centre":
                # The hold ran out and gives its units back to its centre, named only now.
                centre = reply.text("centre")
                continue
            if outcome == "waiting":
                # Race: the person joined or left the waiting list after we looked (a first
                # try expects no entry): declare the entry found, try again.
                entry = reply.text("entry")
                entry_list = (await self.store.hget(keys.wl_entry(entry), "list") or "") \
                    if entry else ""
                continue
            if outcome == "ok":
                return Outcome("ok", reply.text("booking"),
                               ("new" if reply.flag("new") else "existing",))
            return Outcome(outcome)
        raise StoreConflict("confirm-18.lua: the person's waiting entry kept changing")

    async def booking(self, code: str) -> Booking | None:
        raw = await self.store.hgetall(self.keys.booking(code))
        return Booking.from_hash(raw) if raw else None

    async def cancel(self, booking: Booking) -> Outcome:
        """Cancel; the pair goes to the waiting list first (same atomic step)."""
        code = new_code()
        heads = WaitingHeads.expect_empty(booking.centre, booking.district, 1)
        for _ in range(MAX_ATTEMPTS):
            wl_keys, wl_args = self._waitlist_part(heads, [code])
            earliest, _ = self.first_window()
            reply = await self.store.run(
                self.store.cancel_script,
                [*self.keys.booking_shared, self.keys.booking(booking.code),
                 self.keys.cfree(booking.centre), *wl_keys],
                [self.now(), earliest, self.min_gap, self.max_gap, booking.centre,
                 booking.district, *wl_args],
            )
            outcome = reply.text("outcome")
            if outcome == "retry":
                # Race (or the first try, which expects nobody waiting): the lists start
                # otherwise; declare the entries the script found there, try again.
                heads = heads.found(reply)
                continue
            if outcome != "ok":
                return Outcome(outcome)
            assigned = reply.text("assigned")
            return Outcome("ok", "", (assigned,) if assigned else ())
        raise StoreConflict("cancel-n.lua: the waiting lists kept changing")

    async def release_slots(
        self, centre: Centre, slots: Iterable[tuple[Slot, int]], *, share: float | None = None
    ) -> Outcome:
        """Add capacity at one centre; `share` of the new pairs (default: the setting) goes to
        the waiting list inside the same script. Returns units added and codes assigned."""
        pairs: list[str | int] = []
        units = 0
        for slot, count in slots:
            if slot.centre != centre.id or count <= 0:
                continue
            pairs += [slot.id, count]
            units += count
        if not pairs:
            return Outcome("ok", "0")
        share = self.settings.waitlist_share if share is None else share
        quota = int(share * (units // 2) + 0.5)  # a pair takes two units
        heads = WaitingHeads.expect_empty(centre.id, centre.district, quota)
        for _ in range(MAX_ATTEMPTS):
            # One code per entry that may be served; the script never assigns more.
            codes = [new_code() for _ in range(min(quota, heads.count))]
            wl_keys, wl_args = self._waitlist_part(heads, codes)
            earliest, _ = self.first_window()
            reply = await self.store.run(
                self.store.release_slots_script,
                [*self.keys.booking_shared, self.keys.cfree(centre.id), *wl_keys],
                [self.now(), centre.id, centre.district, quota, earliest, self.min_gap,
                 self.max_gap, len(pairs) // 2, *pairs, *wl_args],
            )
            if reply.text("outcome") == "retry":
                # Race (or the first try, which expects nobody waiting): the lists start
                # otherwise; declare the entries the script found there, try again.
                heads = heads.found(reply)
                continue
            return Outcome("ok", str(reply.integer("added")),
                           tuple(reply.text("assigned").split()))
        raise StoreConflict("release_slots-n.lua: the waiting lists kept changing")

    def _waitlist_part(
        self, heads: WaitingHeads, codes: Sequence[str]
    ) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of the waiting-list part of cancel-n.lua and release_slots-n.lua
        (their headers, and `waitlist_args` in lua/_lib.lua, say the order)."""
        keys = [self.keys.wl_centre(heads.centre), self.keys.wl_district(heads.district)]
        for code in codes:
            keys += [self.keys.booking(code), self.keys.msg(f"wl-{code}")]
        keys += [self.keys.wl_entry(eid) for eid in heads.centre_ids + heads.district_ids]
        args: list[str | int] = [heads.window, len(codes), *codes,
                                 len(heads.centre_ids), *heads.centre_ids,
                                 len(heads.district_ids), *heads.district_ids]
        return keys, args

    async def sweep(self, limit: int = 500) -> int:
        """Expire holds whose time ran out; returns how many this call ended."""
        now = self.now()
        return await self.expire(await self.expired_holds(now, limit), now)

    async def _sweep_quietly(self) -> int:
        """A sweep on a hold's way: the hold's answer stands even if this one fails (the
        sweeper will return those units)."""
        try:
            return await self.sweep(EXPIRE_WITH_HOLD)
        except StoreUnavailable as exc:
            log.warning("sweep after a hold failed: %s", exc)
            return 0

    async def expired_holds(self, now: int, limit: int) -> list[ExpiredHold]:
        """A sweep's first step, a read: up to `limit` holds the expiry index lists as run
        out by `now`, with what the second step must declare."""
        async with self.store.guard():
            ids = await self.store.redis.zrangebyscore(self.keys.holds, "-inf", now,
                                                       start=0, num=limit)
            if not ids:
                return []
            pipe = self.store.redis.pipeline(transaction=False)
            for hid in ids:
                pipe.hmget(self.keys.hold(text(hid)), ["owner", "centre"])
            rows = await pipe.execute()
        return [ExpiredHold(text(hid), text(owner or ""), text(centre or ""))
                for hid, (owner, centre) in zip(ids, rows, strict=True)]

    async def expire(self, holds: Sequence[ExpiredHold], now: int) -> int:
        """A sweep's second step (sweep-n.lua): end each of `holds` that is still live and
        run out by `now`; returns how many. Race: a hold confirmed, released or ended by
        another sweeper since the read is no longer live, so its units come back once."""
        if not holds:
            return 0
        keys: list[str] = self.keys.inventory
        args: list[str | int] = [now]
        for found in holds:
            hold = self.keys.hold(found.hid)
            if found.owner and found.centre:
                keys += [hold, self.keys.owner(found.owner), self.keys.cfree(found.centre)]
            else:
                keys += [hold, hold, hold]  # its HASH was gone: only its index entry is left
            args += [found.hid, found.owner, found.centre]
        reply = await self.store.run(self.store.sweep_script, keys, args)
        return reply.integer("expired")

    async def is_empty(self) -> bool:
        async with self.store.guard():
            return int(await self.store.redis.hlen(self.keys.cap)) == 0

    async def centre_counts(self) -> dict[str, dict[str, int]]:
        """Capacity, free, held and booked units per centre (kept by the scripts)."""
        return parse_centre_counts(await self.store.hgetall(self.keys.centre_counts))


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
