"""Slots, offers, holds, bookings and cancellations: the inventory that must never oversell.

All changes to capacity happen inside Lua scripts (see `lua/`), each one atomic step:
hold (both doses at once), release, confirm, cancel (waiting list first), release of new
slots (share to the waiting list), sweep of expired holds.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from booking_backend.catalogue import Catalogue, Centre
from booking_backend.identity import new_code
from booking_backend.settings import Settings
from booking_backend.store import Store, parse_centre_counts

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DAY = 86400


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


class Inventory:
    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self.store = store
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
        Showing is not holding: a shown pair can be gone a moment later, and hold-1.lua
        says so."""
        earliest, latest = self.first_window()
        listed = list(centres)
        if not listed:
            return []
        per_centre = self.settings.offers_per_centre
        reply = await self.store.run(
            self.store.offers_script, [self.store.keys.cfree(c.id) for c in listed],
            [earliest, latest, self.min_gap, self.max_gap, per_centre, per_centre * 4])
        result: list[Offer] = []
        at = 0
        for centre in listed:
            found = int(reply[at])
            for i in range(at + 1, at + 1 + 2 * found, 2):
                result.append(Offer(centre, Slot(int(reply[i]), centre.id),
                                    Slot(int(reply[i + 1]), centre.id)))
            at += 1 + 2 * found
        return result

    async def hold(
        self, first: Slot, second: Slot, owner: str, fields: Mapping[str, str]
    ) -> Outcome:
        hid = secrets.token_urlsafe(16)
        now = self.now()
        expires = now + self.settings.hold_seconds
        earliest, latest = self.first_window()
        flat: list[str] = []
        for key, value in fields.items():
            flat += [key, value]
        reply = await self.store.run(
            self.store.hold_script,
            [self.store.keys.hold(hid)],
            [self.store.prefix, now, hid, first.id, second.id, expires, owner,
             self.min_gap, self.max_gap, earliest, latest, *flat],
        )
        if reply[0] == "ok":
            return Outcome("ok", hid, (str(expires),))
        return Outcome(reply[0], "", tuple(reply[1:]))

    async def get_hold(self, hid: str, owner: str) -> Hold | None:
        if not hid or len(hid) > 64:
            return None
        raw = await self.store.hgetall(self.store.keys.hold(hid))
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
        reply = await self.store.run(
            self.store.release_script, [self.store.keys.hold(hid)],
            [self.store.prefix, hid, owner],
        )
        return reply[0] == "1"

    async def attach_person(
        self, hid: str, owner: str, identity: str, fields: Mapping[str, str]
    ) -> Outcome:
        flat: list[str] = []
        for key, value in fields.items():
            flat += [key, value]
        reply = await self.store.run(
            self.store.hold_details_script, [self.store.keys.hold(hid)],
            [self.store.prefix, self.now(), owner, identity, *flat],
        )
        return Outcome(reply[0], reply[1] if len(reply) > 1 else "")

    async def confirm(self, hid: str, owner: str, source: str) -> Outcome:
        """Book a verified hold. Retrying returns the same booking code ("existing")."""
        reply = await self.store.run(
            self.store.confirm_script,
            [self.store.keys.hold(hid), self.store.keys.verif(hold_verification(hid))],
            [self.store.prefix, self.now(), hid, owner, new_code(), source],
        )
        if reply[0] == "ok":
            return Outcome("ok", reply[1], (reply[2],))
        return Outcome(reply[0])

    async def booking(self, code: str) -> Booking | None:
        raw = await self.store.hgetall(self.store.keys.booking(code))
        return Booking.from_hash(raw) if raw else None

    async def cancel(self, booking: Booking) -> Outcome:
        """Cancel; the pair goes to the waiting list first (same atomic step)."""
        earliest, _ = self.first_window()
        reply = await self.store.run(
            self.store.cancel_script, [self.store.keys.booking(booking.code)],
            [self.store.prefix, self.now(), earliest, self.min_gap, self.max_gap,
             booking.district, new_code()],
        )
        return Outcome(reply[0], "", tuple(reply[1:]))

    async def release_slots(
        self, centre: Centre, slots: Iterable[tuple[Slot, int]], *, share: float | None = None
    ) -> Outcome:
        """Add capacity at one centre; `share` of the new pairs (default: the setting) goes to
        the waiting list inside the same script. Returns units added and codes assigned."""
        triples: list[str | int] = []
        units = 0
        for slot, count in slots:
            if slot.centre != centre.id or count <= 0:
                continue
            triples += [slot.id, slot.start, count]
            units += count
        if not triples:
            return Outcome("ok", "0")
        share = self.settings.waitlist_share if share is None else share
        quota = int(share * (units // 2) + 0.5)  # a pair takes two units
        # Codes are only needed for people actually waiting. Someone joining between this
        # read and the script is covered by the margin; beyond it they wait for the next
        # release (the script never assigns more than it has codes for).
        waiting = int((await self.store.counts())["waiting"])
        codes = [new_code() for _ in range(min(quota, waiting + 50))]
        earliest, _ = self.first_window()
        reply = await self.store.run(
            self.store.release_slots_script, [],
            [self.store.prefix, self.now(), centre.id, centre.district, quota, earliest,
             self.min_gap, self.max_gap, len(codes), *codes, *triples],
        )
        return Outcome("ok", reply[0], tuple(reply[1:]))

    async def sweep(self, limit: int = 500) -> int:
        """Expire holds whose time ran out; returns how many (sweep-0.lua counts them)."""
        reply = await self.store.run(
            self.store.sweep_script, [], [self.store.prefix, self.now(), limit]
        )
        return int(reply[0])

    async def is_empty(self) -> bool:
        async with self.store.guard():
            return int(await self.store.redis.hlen(self.store.keys.cap)) == 0

    async def centre_counts(self) -> dict[str, dict[str, int]]:
        """Capacity, free, held and booked units per centre (kept by the scripts)."""
        return parse_centre_counts(await self.store.hgetall(self.store.keys.centre_counts))


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
