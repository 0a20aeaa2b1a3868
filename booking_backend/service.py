"""The booking operations, shared by the HTML pages and the JSON API.

Each method validates its input, re-checks eligibility where a booking is made, runs the
step as one database transaction and turns its outcome into a result or a `Problem`. The pages
and the API reach the data only through here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from booking_backend.catalogue import Catalogue, CatalogueCache, Centre, District
from booking_backend.days import DayChoice
from booking_backend.db import Connection, Database
from booking_backend.eligibility import Decision, InvalidInput, decide, parse_birth_date
from booking_backend.identity import (
    Contact,
    IdentityHasher,
    format_code,
    is_code,
    normalise_code,
    normalise_name,
    parse_contact,
)
from booking_backend.inventory import (
    Booking,
    Hold,
    Inventory,
    Offer,
    OfferDay,
    Slot,
    cancel_verification,
    hold_verification,
)
from booking_backend.invitations import CODE_GROUPS, Invitations
from booking_backend.metrics import Metrics
from booking_backend.settings import Settings
from booking_backend.verification import CodeState, Verifier
from booking_backend.waitlist import Waitlist
from vaccine_queue.pages import Problem

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# What a code check's status tells the person (the code of the `err.<code>` text) and the
# HTTP status it answers with.
_CHECK_PROBLEMS: dict[str, tuple[str, int]] = {
    "wrong": ("code_wrong", 422), "locked": ("code_locked", 429),
    "expired": ("code_expired", 410), "not_delivered": ("code_not_delivered", 409),
    "failed": ("code_failed", 502), "missing": ("code_missing", 409),
}
# What the booking step's refusals tell the person, and the HTTP status.
_CONFIRM_PROBLEMS: dict[str, tuple[str, int]] = {
    "expired": ("hold_expired", 410), "not_found": ("hold_missing", 404),
    "unverified": ("unverified", 409), "no_details": ("no_details", 409),
    "already_booked": ("already_booked", 409),
    "invitation_invalid": ("invitation_invalid", 409),
}
# The same for asking for a code to be sent.
_REQUEST_PROBLEMS: dict[str, tuple[str, int]] = {
    "wait": ("code_wait", 429), "too_many": ("code_too_many", 429),
    "locked": ("code_locked", 429),
}
IDEMPOTENCY_TTL_S = 86400


@dataclass(frozen=True, slots=True)
class Person:
    birth: dt.date
    postcode: str
    district: District
    invitation: str  # HMAC of the invitation code; "" without one
    invitation_min_age: int | None
    decision: Decision


def _input_error(exc: InvalidInput) -> Problem:
    return Problem(exc.code, 400, field=exc.field)


def _code_problem(table: dict[str, tuple[str, int]], status: str, **details: Any) -> Problem:
    code, http_status = table.get(status, (f"code_{status}", 409))
    return Problem(code, http_status, **details)


class Service:
    def __init__(
        self, settings: Settings, db: Database, clock: Clock, metrics: Metrics,
        catalogue: CatalogueCache, inventory: Inventory, verifier: Verifier,
        waitlist: Waitlist, invitations: Invitations, hasher: IdentityHasher,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.catalogue_cache = catalogue
        self.inventory = inventory
        self.verifier = verifier
        self.waitlist = waitlist
        self.invitations = invitations
        self.hasher = hasher
        self.zone = zoneinfo.ZoneInfo(settings.timezone)

    # -- time -------------------------------------------------------------------------------
    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), self.zone).date()

    def local(self, epoch: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(epoch, self.zone)

    def now(self) -> int:
        """The inventory's clock in whole seconds (what hold expiries are compared with)."""
        return self.inventory.now()

    # -- who --------------------------------------------------------------------------------
    async def catalogue(self) -> Catalogue:
        catalogue = await self.catalogue_cache.get()
        if catalogue is None:
            raise Problem("not_ready", 503)
        return catalogue

    async def person(self, birth_raw: object, postcode_raw: object,
                     invitation_raw: object = "") -> Person:
        """Check the person's input and decide eligibility (no exception when not eligible:
        the caller shows why)."""
        try:
            born = parse_birth_date(birth_raw, self.today())
        except InvalidInput as exc:
            raise _input_error(exc) from exc
        if not isinstance(postcode_raw, str) or not (
            len(postcode_raw.strip()) == 5 and postcode_raw.strip().isascii()
            and postcode_raw.strip().isdigit()
        ):
            raise Problem("postcode_invalid", 400, field="postcode")
        postcode = postcode_raw.strip()
        catalogue = await self.catalogue()
        district = catalogue.district_of(postcode)
        if district is None:
            raise Problem("postcode_unknown", 400, field="postcode",
                          params={"region": catalogue.name or "?"})
        if invitation_raw is not None and not isinstance(invitation_raw, str):
            raise Problem("field_type", 422, field="invitation_code",
                          params={"field": "invitation_code"})
        invitation, min_age = "", None
        if invitation_raw and invitation_raw.strip():
            code = invitation_raw.strip()
            if not is_code(code, CODE_GROUPS):
                raise Problem("invitation_invalid", 400, field="invitation_code")
            wave = await self.invitations.wave_of(code)
            invitation = self.hasher.invitation(code)
            # A letter books once: the database's unique index refuses a second booking too.
            if wave is None or await self.invitations.used(invitation):
                raise Problem("invitation_invalid", 400, field="invitation_code")
            min_age = wave.min_age
        decision = decide(
            born, self.today(), self.settings.priority_groups,
            invitation_min_age=min_age, invitations_required=self.settings.invitations_required,
        )
        return Person(born, postcode, district, invitation, min_age, decision)

    def require_eligible(self, person: Person) -> None:
        decision = person.decision
        if decision.eligible:
            return
        raise Problem(
            "not_eligible", 403,
            extra={
                "reason": decision.reason, "age": decision.age,
                "open_groups": [g.name for g in decision.open_groups],
                "own_group": decision.next_group.name if decision.next_group else None,
                "own_group_opens": (
                    decision.next_group.opens.isoformat()
                    if decision.next_group and decision.next_group.opens else None
                ),
            },
        )

    # -- finding ----------------------------------------------------------------------------
    async def search(self, person: Person, choice: DayChoice | None = None, *,
                     only: str = "", per_centre: int | None = None,
                     ) -> tuple[list[Centre], list[Offer]]:
        """The person's centres (nearest first) and their offers, on the chosen day and time
        of day if any; `only` the offers of one of those centres (a page's "more")."""
        centres = await self.centres(person)
        choice = choice or DayChoice()
        if choice.day is not None:
            first, last = self.inventory.first_days()
            if not first <= choice.day <= last:
                raise Problem("day_out_of_range", 422, field="day")
        listed = centres
        if only:
            listed = [c for c in centres if c.id == only]
            if not listed:
                raise Problem("centre_unknown", 422, field="centre")
        return centres, await self.inventory.offers(
            listed, within=choice.window(self.zone), hours=choice.hours, per_centre=per_centre)

    async def centres(self, person: Person) -> list[Centre]:
        """The centres a person is offered, home district first, then the nearest."""
        self.require_eligible(person)
        catalogue = await self.catalogue()
        return catalogue.centres_for(
            person.postcode, home_only=self.settings.home_district_only,
            limit=self.settings.max_centres,
        )

    async def offer_days(self, centres: list[Centre], limit: int) -> list[OfferDay]:
        """The next days on which these centres have free pairs (the day chooser)."""
        return await self.inventory.offer_days(centres, limit)

    # -- holding ----------------------------------------------------------------------------
    async def hold(self, person: Person, first_raw: object, second_raw: object, owner: str,
                   lang: str) -> tuple[str, int]:
        """Hold a pair; eligibility and the district rule are checked here again."""
        self.require_eligible(person)
        first, second = Slot.parse(first_raw), Slot.parse(second_raw)
        if first is None or second is None:
            raise Problem("slot_invalid", 422, field="first_slot")
        catalogue = await self.catalogue()
        centre = catalogue.centres.get(first.centre)
        if centre is None:
            raise Problem("centre_unknown", 422, field="first_slot")
        if self.settings.home_district_only and centre.district != person.district.id:
            self.metrics.holds.labels(outcome="outside_district").inc()
            raise Problem("outside_district", 403)
        outcome = await self.inventory.hold(first, second, owner, {
            "birth": person.birth.isoformat(), "district": centre.district,
            "home_district": person.district.id, "invitation": person.invitation,
            "inv_min_age": "" if person.invitation_min_age is None
            else str(person.invitation_min_age),
            "lang": lang,
        })
        self.metrics.holds.labels(outcome=outcome.status).inc()
        if outcome.status == "ok":
            return outcome.value, int(outcome.extra[0])
        if outcome.status == "gone":
            raise Problem("pair_gone", 409)
        raise Problem("pair_invalid", 422, extra={"detail": ",".join(outcome.extra)})

    async def find_hold(self, hid: str, owner: str) -> Hold | None:
        """The owner's hold, or None when there is none (or it belongs to someone else)."""
        return await self.inventory.get_hold(hid, owner)

    async def hold_state(self, hid: str, owner: str) -> Hold:
        hold = await self.find_hold(hid, owner)
        if hold is None:
            raise Problem("hold_missing", 404)
        return hold

    async def live_hold(self, hid: str, owner: str) -> Hold:
        hold = await self.hold_state(hid, owner)
        if hold.status != "held":
            raise Problem("hold_expired", 410, extra={"status": hold.status})
        return hold

    async def release(self, hid: str, owner: str) -> bool:
        return await self.inventory.release(hid, owner)

    # -- verifying --------------------------------------------------------------------------
    async def submit_details(self, hid: str, owner: str, name_raw: object, contact_raw: object,
                             lang: str) -> Contact:
        try:
            name = normalise_name(name_raw)
            contact = parse_contact(contact_raw)
        except InvalidInput as exc:
            raise _input_error(exc) from exc
        hold = await self.live_hold(hid, owner)
        # Race: the hold may expire or be confirmed between this read and the write below;
        # attach_person checks again under the hold's row lock and says which.
        # Name and birth date make the person; contact details do not make a new one.
        identity = self.hasher.person(name, hold.fields.get("birth", ""))
        outcome = await self.inventory.attach_person(hid, owner, identity, {
            "name": name, "channel": contact.channel, "address": contact.address, "lang": lang,
        })
        if outcome.status == "already_booked":
            raise Problem("already_booked", 409)
        if outcome.status == "expired":
            raise Problem("hold_expired", 410)
        if outcome.status == "confirmed":
            raise Problem("already_booked", 409)
        if outcome.status != "ok":
            raise Problem("hold_missing", 404)
        await self._send_code(hold_verification(hid), hid, contact, lang, "code")
        return contact

    async def resend(self, hid: str, owner: str) -> Contact:
        hold = await self.live_hold(hid, owner)
        contact = self.hold_contact(hold)
        if contact is None:
            raise Problem("no_details", 409)
        await self._send_code(hold_verification(hid), hid, contact,
                              hold.fields.get("lang", "de"), "code")
        return contact

    async def _send_code(self, vid: str, subject: str, contact: Contact, lang: str,
                         kind: str) -> None:
        status, detail = await self.verifier.request(vid, subject, contact, lang, kind)
        if status == "ok":
            return
        if status == "verified":
            return  # the code was already entered correctly: nothing to send
        raise _code_problem(_REQUEST_PROBLEMS, status, params={"seconds": detail})

    async def hold_code(self, hid: str) -> CodeState:
        """Where the hold's verification code stands (sent, delivered, locked, ...)."""
        return await self.verifier.state(hold_verification(hid), None)

    @staticmethod
    def hold_contact(hold: Hold) -> Contact | None:
        channel, address = hold.fields.get("channel"), hold.fields.get("address")
        if not channel or not address:
            return None
        return Contact(channel, address)

    async def claim_idempotency_key(self, owner: str, key: str, hid: str) -> None:
        """A key names one confirmation. Retrying with it is safe (the hold books once
        anyway); using it for another hold is a client bug we refuse."""
        if not 1 <= len(key) <= 100 or not key.isprintable():
            raise Problem("idempotency_key_invalid", 400)
        digest = hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()
        now = int(self.clock())

        async def work(conn: Connection) -> str:
            # Race: the primary key decides between two concurrent first uses of one key:
            # exactly one claims it, the other compares; both then confirm the same hold,
            # which books once.
            await conn.execute(
                "INSERT INTO idempotency_keys (digest, hold_id, expires) VALUES ($1, $2, $3)"
                " ON CONFLICT (digest) DO UPDATE SET hold_id = $2, expires = $3"
                " WHERE idempotency_keys.expires <= $4",
                digest, hid, now + IDEMPOTENCY_TTL_S, now)
            claimed: str = await conn.fetchval(
                "SELECT hold_id FROM idempotency_keys WHERE digest = $1", digest)
            return claimed

        if await self.db.transaction(work) != hid:
            raise Problem("idempotency_key_reused", 422)

    async def confirm(self, hid: str, owner: str, code_raw: object,
                      source: str) -> tuple[Booking, bool]:
        """Check the code and book. A retry of a confirmed hold returns the same booking."""
        if not isinstance(code_raw, str) or not code_raw.strip():
            raise Problem("code_missing", 400, field="code")
        hold = await self.hold_state(hid, owner)
        # An expired hold goes straight to the booking step, which refuses it and frees its
        # units.
        if not hold.booking and hold.status == "held":
            status, detail = await self.verifier.check(hold_verification(hid), hid, code_raw)
            if status != "ok":
                self.metrics.confirmations.labels(outcome=f"code_{status}").inc()
                raise _code_problem(
                    _CHECK_PROBLEMS, status, field="code", params={"remaining": detail},
                    extra={"attempts_left": int(detail)} if detail else None)
            self._recheck(hold)
        outcome = await self.inventory.confirm(hid, owner, source)
        self.metrics.confirmations.labels(outcome=outcome.status).inc()
        if outcome.status != "ok":
            code, http_status = _CONFIRM_PROBLEMS.get(outcome.status, (outcome.status, 409))
            raise Problem(code, http_status)
        new = outcome.extra[0] == "new"
        if new:
            self.verifier.wakeup()  # the booking code is queued for the person as well
            self.metrics.bookings.labels(channel=source).inc()
            log.info("booking confirmed via %s at centre %s", source, hold.centre)
        booking = await self.inventory.booking(outcome.value)
        if booking is None:  # only if an operator deleted it in between
            raise Problem("booking_not_found", 404)
        return booking, new

    def _recheck(self, hold: Hold) -> None:
        """Eligibility again at the moment of booking (a group may have been closed)."""
        try:
            born = dt.date.fromisoformat(hold.fields.get("birth", ""))
        except ValueError as exc:
            raise Problem("hold_missing", 404) from exc
        min_age = hold.fields.get("inv_min_age", "")
        decision = decide(
            born, self.today(), self.settings.priority_groups,
            invitation_min_age=int(min_age) if min_age else None,
            invitations_required=self.settings.invitations_required,
        )
        if not decision.eligible:
            raise Problem("not_eligible", 403, extra={"reason": decision.reason})

    # -- managing ---------------------------------------------------------------------------
    async def booking(self, code: str) -> Booking | None:
        """A booking by its code as kept in the person's session (no birth date check:
        `find_booking` is the way in for a code someone types)."""
        return await self.inventory.booking(code) if code else None

    async def find_booking(self, code_raw: object, birth_raw: object) -> Booking:
        if not is_code(code_raw):
            raise Problem("booking_code_invalid", 400, field="booking_code")
        assert isinstance(code_raw, str)
        try:
            born = parse_birth_date(birth_raw, self.today())
        except InvalidInput as exc:
            raise _input_error(exc) from exc
        booking = await self.inventory.booking(format_code(normalise_code(code_raw)))
        # Same answer for a wrong code and a wrong birth date: no probing of codes.
        if booking is None or not hmac.compare_digest(booking.birth, born.isoformat()):
            raise Problem("booking_not_found", 404)
        return booking

    def booking_contact(self, booking: Booking) -> Contact:
        return Contact(booking.channel, booking.address)

    async def request_cancel_code(self, booking: Booking) -> Contact:
        self._cancellable(booking)
        contact = self.booking_contact(booking)
        await self._send_code(cancel_verification(booking.code), f"cancel:{booking.code}",
                              contact, booking.lang, "cancel_code")
        return contact

    def _cancellable(self, booking: Booking) -> None:
        if booking.status != "active":
            raise Problem("booking_not_active", 409)
        if booking.first.start <= self.clock():
            raise Problem("cancel_too_late", 409)

    async def cancel(self, booking: Booking, code_raw: object) -> list[str]:
        self._cancellable(booking)
        if self.settings.cancel_requires_code:
            if not isinstance(code_raw, str) or not code_raw.strip():
                raise Problem("code_missing", 400, field="code")
            status, detail = await self.verifier.check(
                cancel_verification(booking.code), f"cancel:{booking.code}", code_raw)
            if status != "ok":
                raise _code_problem(_CHECK_PROBLEMS, status, field="code",
                                    params={"remaining": detail})
        outcome = await self.inventory.cancel(booking)
        if outcome.status != "ok":
            raise Problem("booking_not_active", 409)
        self.metrics.cancellations.inc()
        assigned = list(outcome.extra)
        if assigned:
            self.metrics.bookings.labels(channel="waitlist").inc(len(assigned))
        log.info("booking cancelled at centre %s; %d waiting-list assignment(s)",
                 booking.centre, len(assigned))
        return assigned

    # -- waiting list -----------------------------------------------------------------------
    async def join_waitlist(self, person: Person, name_raw: object, contact_raw: object,
                            centre_raw: object, lang: str) -> tuple[str, int, Contact]:
        self.require_eligible(person)
        try:
            name = normalise_name(name_raw)
            contact = parse_contact(contact_raw)
        except InvalidInput as exc:
            raise _input_error(exc) from exc
        catalogue = await self.catalogue()
        centre: Centre | None = None
        if centre_raw not in (None, ""):
            if not isinstance(centre_raw, str) or centre_raw not in catalogue.centres:
                raise Problem("centre_unknown", 422, field="centre")
            centre = catalogue.centres[centre_raw]
            if self.settings.home_district_only and centre.district != person.district.id:
                raise Problem("outside_district", 403, field="centre")
        identity = self.hasher.person(name, person.birth.isoformat())
        status, position = await self.waitlist.join(identity, person.district, centre, {
            "birth": person.birth.isoformat(), "name": name, "channel": contact.channel,
            "address": contact.address, "lang": lang, "invitation": person.invitation,
        })
        self.metrics.waitlist_joins.labels(outcome=status).inc()
        if status == "already_booked":
            raise Problem("already_booked", 409)
        return status, position, contact
