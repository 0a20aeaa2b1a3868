"""Verification codes and the outbox worker that delivers them (and booking news).

A code is requested (one transaction writes it and queues its message in the outbox), an
outbox worker in any backend process claims the message, hands it to a sender, and only
when the sender succeeded does the code's validity start. A backed-up SMS queue therefore
never delivers a code that has already expired (Niedersachsen, January 2021).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import asyncpg

from booking_backend import outbox
from booking_backend.db import Connection, Database, StoreUnavailable
from booking_backend.identity import Contact, IdentityHasher, new_digits
from booking_backend.metrics import Metrics
from booking_backend.settings import Settings
from vaccine_queue.config import SettingsError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
CLAIM_LEASE_SECONDS = 60
BACKOFF_SECONDS = 2


class DeliveryFailed(Exception):
    """A sender could not deliver; the outbox retries with backoff."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one person, rendered to text by the outbox before sending."""

    mid: str
    kind: str  # code | cancel_code | assigned | booked | turn_near | ...
    contact: Contact
    lang: str
    text: str


class Sender(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Deliver or raise `DeliveryFailed`."""


class ConsoleSender:
    """Demo sender: writes the message to the log. Only the address is masked; showing the
    code is this sender's purpose (the demo has no SMS gateway), so it refuses to exist
    outside demo/dev mode: a booking could be completed from the log alone."""

    name = "console"

    def __init__(self, *, demo_or_dev: bool) -> None:
        if not demo_or_dev:
            raise SettingsError(
                "the console sender writes codes to the log: it runs in demo/dev mode only "
                "(set BOOKING_SENDER=webhook)")

    async def send(self, message: Message) -> None:
        log.warning("DEMO %s to %s: %s", message.contact.channel, message.contact.masked,
                    message.text)


class WebhookSender:
    """POSTs `{"id", "channel", "to", "text", "kind", "lang"}` as JSON to an SMS/e-mail gateway."""

    name = "webhook"

    def __init__(self, url: str, token: str = "") -> None:
        self._session: aiohttp.ClientSession | None = None
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def open(self) -> None:
        """Create the HTTP client (inside the running loop, from a cleanup context)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, message: Message) -> None:
        if self._session is None:
            raise DeliveryFailed("webhook sender is not open")
        payload = {
            "id": message.mid, "channel": message.contact.channel,
            "to": message.contact.address, "text": message.text, "kind": message.kind,
            "lang": message.lang,
        }
        try:
            async with self._session.post(
                self._url, json=payload, headers=self._headers
            ) as response:
                if response.status >= 300:
                    raise DeliveryFailed(f"gateway answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(type(exc).__name__) from exc


Renderer = Callable[[str, str, dict[str, str]], str]


@dataclass(frozen=True, slots=True)
class CodeState:
    status: str  # pending | verified | locked | failed | none
    delivered: bool
    sends: int
    channel: str
    masked: str


class Verifier:
    def __init__(
        self, db: Database, settings: Settings, clock: Clock, hasher: IdentityHasher,
        metrics: Metrics, wakeup: Callable[[], None],
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._hasher = hasher
        self._metrics = metrics
        self._wakeup = wakeup

    def wakeup(self) -> None:
        self._wakeup()

    async def request(
        self, vid: str, subject: str, contact: Contact, lang: str, kind: str
    ) -> tuple[str, str]:
        """Send a fresh code. Returns (status, detail): ok (sends), wait (seconds),
        too_many, verified, locked."""
        code = new_digits(6)
        settings = self._settings
        forget = max(3600, settings.code_validity_seconds * 4)

        async def work(conn: Connection) -> tuple[str, str]:
            now = int(self._clock())
            # Race: two requests for one verification at once take turns here, so the
            # resend interval and the send limit hold.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                               f"verification:{vid}")
            v = await conn.fetchrow("SELECT * FROM verifications WHERE id = $1", vid)
            if v is not None:
                if v["status"] == "verified" and v["subject"] == subject:
                    return "verified", ""
                if v["status"] == "locked":
                    return "locked", ""
                if v["sends"] >= settings.code_max_sends:
                    return "too_many", ""
                since = now - v["requested"]
                if since < settings.code_resend_seconds:
                    return "wait", str(settings.code_resend_seconds - since)
                # A new code replaces the old one: its message, if still queued, is
                # withdrawn; one being sent right now is ignored on delivery (not current).
                if v["message"]:
                    await conn.execute("DELETE FROM outbox WHERE id = $1", v["message"])
                # If the old code's validity had run out, nobody used it.
                if v["counting_until"] is not None and v["counting_until"] <= now:
                    await conn.execute(
                        "UPDATE counters SET value = value + 1 WHERE name = 'codes_expired'")
            mid = await outbox.enqueue(conn, kind, contact.channel, contact.address, lang, now,
                                       code=code, verification=vid)
            sends = await conn.fetchval(
                "INSERT INTO verifications (id, subject, code_hash, status, message, sends,"
                " requested, forget_after) VALUES ($1, $2, $3, 'pending', $4, 1, $5, $6)"
                " ON CONFLICT (id) DO UPDATE SET subject = $2, code_hash = $3,"
                " status = 'pending', message = $4, sends = verifications.sends + 1,"
                " requested = $5, delivered = NULL, counting_until = NULL, forget_after = $6"
                " RETURNING sends",
                vid, subject, self._hasher.code(subject, code), mid, now, now + forget)
            return "ok", str(sends)

        status, detail = await self._db.transaction(work)
        self._metrics.codes_requested.labels(outcome=status).inc()
        if status == "ok":
            self._wakeup()
        return status, detail

    async def check(self, vid: str, subject: str, code: str) -> tuple[str, str]:
        """(status, detail): ok, wrong (attempts left), locked, expired, not_delivered, ...

        Validity runs from delivery, never from the request. Before delivery the right code
        is accepted all the same (whoever has it got the message: the gateway passed it on
        before its answer reached us); a wrong one is "not_delivered" and counts as an
        attempt, so guessing stays bounded."""
        digits = "".join(ch for ch in code if ch.isdigit())
        settings = self._settings
        digest = self._hasher.code(subject, digits)

        async def work(conn: Connection) -> tuple[str, str]:
            now = int(self._clock())
            # Race: concurrent checks of one code count every attempt: the row is locked.
            v = await conn.fetchrow(
                "SELECT * FROM verifications WHERE id = $1 FOR UPDATE", vid)
            if v is None or v["subject"] != subject:
                return "missing", ""
            right = secrets.compare_digest(v["code_hash"], digest)
            # A repeated submit of the right code (double click, retry) stays correct.
            if v["status"] == "verified":
                return ("ok", "") if right else ("wrong", "0")
            if v["status"] in ("locked", "failed"):
                return v["status"], ""
            delivered = v["delivered"]
            if delivered is not None and now >= delivered + settings.code_validity_seconds:
                # Counted by whoever takes it out of counting first (this or the sweeper).
                if v["counting_until"] is not None:
                    await conn.execute(
                        "UPDATE verifications SET counting_until = NULL WHERE id = $1", vid)
                    await conn.execute(
                        "UPDATE counters SET value = value + 1 WHERE name = 'codes_expired'")
                return "expired", ""
            attempts = v["attempts"] + 1
            if right:
                await conn.execute(
                    "UPDATE verifications SET attempts = $2, status = 'verified',"
                    " verified_at = $3, counting_until = NULL WHERE id = $1",
                    vid, attempts, now)
                return "ok", ""
            if attempts >= settings.code_max_attempts:
                await conn.execute(
                    "UPDATE verifications SET attempts = $2, status = 'locked',"
                    " counting_until = NULL WHERE id = $1", vid, attempts)
                return "locked", ""
            await conn.execute("UPDATE verifications SET attempts = $2 WHERE id = $1",
                               vid, attempts)
            if delivered is None:
                return "not_delivered", ""
            return "wrong", str(settings.code_max_attempts - attempts)

        status, detail = await self._db.transaction(work)
        self._metrics.code_checks.labels(outcome=status).inc()
        return status, detail

    async def expire_codes(self, limit: int = 500) -> int:
        """Count delivered codes whose validity ran out unused. A code stops counting when
        it is used, locked, replaced or found expired by a check: each way exactly once."""

        async def work(conn: Connection) -> int:
            now = int(self._clock())
            # Race: two sweepers: each takes other rows (SKIP LOCKED), so each code counts once.
            expired = await conn.fetchval(
                "WITH gone AS (UPDATE verifications SET counting_until = NULL"
                " WHERE id IN (SELECT id FROM verifications WHERE counting_until <= $1"
                " ORDER BY counting_until LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1)"
                " SELECT count(*) FROM gone", now, limit)
            if expired:
                await conn.execute(
                    "UPDATE counters SET value = value + $1 WHERE name = 'codes_expired'",
                    expired)
            # Verifications nobody can use any more leave with their code hashes.
            await conn.execute(
                "DELETE FROM verifications WHERE forget_after < $1 AND counting_until IS NULL",
                now)
            return int(expired)

        return await self._db.transaction(work)

    async def state(self, vid: str, contact: Contact | None) -> CodeState:
        row = await self._db.fetchrow(
            "SELECT status, delivered, sends FROM verifications WHERE id = $1", vid)
        return CodeState(
            row["status"] if row else "none", bool(row and row["delivered"] is not None),
            row["sends"] if row else 0,
            contact.channel if contact else "", contact.masked if contact else "",
        )


class Outbox:
    """Delivers queued messages with retries and backoff. Workers may run in every backend
    process: a claim moves a message's due time to the end of a lease, so two workers never
    hold one message at once, and a message whose worker died is claimed again after the
    lease (delivery is at least once)."""

    def __init__(
        self, db: Database, sender: Sender, settings: Settings, clock: Clock,
        metrics: Metrics, render: Renderer,
    ) -> None:
        self._db = db
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._render = render
        self._wakeup = asyncio.Event()

    def wakeup(self) -> None:
        self._wakeup.set()

    async def run_once(self, limit: int = 50) -> int:
        """Deliver what is due now; returns how many messages were attempted."""
        now = int(self._clock())
        # Race: workers of several processes claim at once: SKIP LOCKED gives each other rows.
        rows = await self._db.fetch(
            "UPDATE outbox SET due = $1::bigint + $2::bigint WHERE id IN (SELECT id FROM outbox"
            " WHERE due <= $1 ORDER BY due LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
            now, CLAIM_LEASE_SECONDS, limit)
        # Deliveries run side by side: one slow gateway call must not hold up the queue.
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        mid, kind, lang = row["id"], row["kind"], row["lang"]
        contact = Contact(row["channel"], row["address"])
        fields = {"code": row["code"] or "", "booking": row["booking"] or "",
                  "reason": row["reason"] or "", "link": row["link"] or "",
                  "minutes": str(row["minutes"] or 0)}
        message = Message(mid, kind, contact, lang, self._render(kind, lang, fields))
        try:
            await self._sender.send(message)
        except DeliveryFailed as exc:
            outcome = await self._failed(mid)
            log.warning("delivery of a %s message to %s failed (%s): %s", kind,
                        contact.masked, exc, outcome)
            self._metrics.deliveries.labels(sender=self._sender.name, outcome=outcome).inc()
            return
        now = self._clock()
        await self._done(mid, row["verification"], int(now))
        self._metrics.deliveries.labels(sender=self._sender.name, outcome="delivered").inc()
        self._metrics.delivery_delay.observe(max(0.0, now - row["created"]))

    async def _done(self, mid: str, vid: str | None, now: int) -> None:
        """The message left: it leaves the outbox (the code with it), and the validity of
        the code it carried starts now, if it is still the current one."""
        validity = self._settings.code_validity_seconds

        async def work(conn: Connection) -> None:
            await conn.execute("DELETE FROM outbox WHERE id = $1", mid)
            if vid:
                # Only the current code counts: one replaced by a resend stays unusable; a
                # code entered before the gateway's answer came back is used up already.
                await conn.execute(
                    "UPDATE verifications SET delivered = $3, counting_until ="
                    " CASE WHEN status IN ('verified', 'locked') THEN NULL"
                    " ELSE $3::bigint + $4::bigint END"
                    " WHERE id = $1 AND message = $2 AND delivered IS NULL",
                    vid, mid, now, validity)

        await self._db.transaction(work)

    async def _failed(self, mid: str) -> str:
        """A delivery failed: retry later with backoff (retry), or give up (gave_up)."""
        settings = self._settings

        async def work(conn: Connection) -> str:
            row = await conn.fetchrow(
                "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1"
                " RETURNING attempts, verification", mid)
            if row is None:
                return "gave_up"  # withdrawn by a resend meanwhile
            attempts = row["attempts"]
            if attempts >= settings.outbox_max_attempts:
                await conn.execute("DELETE FROM outbox WHERE id = $1", mid)
                # The page tells the person honestly that no code could be sent.
                await conn.execute(
                    "UPDATE verifications SET status = 'failed'"
                    " WHERE id = $1 AND message = $2", row["verification"], mid)
                return "gave_up"
            due = int(self._clock()) + BACKOFF_SECONDS * 2 ** (attempts - 1)
            await conn.execute("UPDATE outbox SET due = $2 WHERE id = $1", mid, due)
            return "retry"

        return await self._db.transaction(work)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; sleeps until woken by a new message or the poll."""
        poll = self._settings.outbox_poll_seconds
        while not stop.is_set():
            # Cleared before looking, so a message queued while we look is not slept through.
            self._wakeup.clear()
            try:
                done = await self.run_once()
            except StoreUnavailable as exc:
                log.warning("outbox: database unavailable: %s", exc)
                done = 0
            if done == 0:
                waiters = {asyncio.ensure_future(self._wakeup.wait()),
                           asyncio.ensure_future(stop.wait())}
                try:
                    await asyncio.wait(waiters, timeout=poll,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
