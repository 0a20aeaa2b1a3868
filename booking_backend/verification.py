"""Verification codes and the outbox that delivers them (and waiting-list news).

A code is requested (code_request-7.lua writes it and queues a message in one step), the
outbox worker hands the message to a sender, and only when the sender succeeded does
outbox_done-5.lua start the code's validity. A backed-up SMS queue therefore never delivers
a code that has already expired (Niedersachsen, January 2021).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from booking_backend.identity import Contact, IdentityHasher, new_digits
from booking_backend.metrics import Metrics
from booking_backend.settings import Settings
from booking_backend.store import MAX_ATTEMPTS, Store, StoreConflict, StoreUnavailable

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
    kind: str  # code | cancel_code | assigned
    contact: Contact
    lang: str
    text: str


class Sender(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Deliver or raise `DeliveryFailed`."""


class ConsoleSender:
    """Demo sender: writes the message to the log. Only the address is masked; showing the
    code is this sender's purpose (the demo has no SMS gateway)."""

    name = "console"

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
        self, store: Store, settings: Settings, clock: Clock, hasher: IdentityHasher,
        metrics: Metrics, wakeup: Callable[[], None],
    ) -> None:
        self._store = store
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
        mid = secrets.token_urlsafe(12)
        keys = self._store.keys
        old = ""  # the message of the code this one replaces, learnt from the script
        for _ in range(MAX_ATTEMPTS):
            reply = await self._store.run(
                self._store.code_request_script,
                [keys.verif(vid), keys.outbox, keys.outbox_created, keys.codes, keys.counts,
                 keys.msg(mid), keys.msg(old or mid)],
                [int(self._clock()), self._hasher.code(subject, code), mid,
                 self._settings.code_resend_seconds, self._settings.code_max_sends,
                 max(3600, self._settings.code_validity_seconds * 4), subject, old,
                 "kind", kind, "channel", contact.channel, "address", contact.address,
                 "lang", lang, "code", code],
            )
            status = reply.text("outcome")
            if status == "previous":
                # Race: the current code's message is not the one we expected (a first try
                # expects none, or another request renewed it meanwhile): declare it, retry.
                old = reply.text("message")
                continue
            self._metrics.codes_requested.labels(outcome=status).inc()
            if status == "ok":
                self._wakeup()
                return status, reply.text("sends")
            return status, reply.text("seconds") if status == "wait" else ""
        raise StoreConflict("code_request-7.lua: the verification kept changing")

    async def check(self, vid: str, subject: str, code: str) -> tuple[str, str]:
        """(status, detail): ok, wrong (attempts left), locked, expired, not_delivered, ..."""
        digits = "".join(ch for ch in code if ch.isdigit())
        keys = self._store.keys
        reply = await self._store.run(
            self._store.code_check_script, [keys.verif(vid), keys.codes, keys.counts],
            [int(self._clock()), self._hasher.code(subject, digits),
             self._settings.code_validity_seconds, self._settings.code_max_attempts, subject],
        )
        status = reply.text("outcome")
        self._metrics.code_checks.labels(outcome=status).inc()
        return status, reply.text("remaining") if status == "wrong" else ""

    async def expire_codes(self, limit: int = 500) -> int:
        """Count delivered codes whose validity ran out unused (codes_expire-2.lua counts)."""
        keys = self._store.keys
        reply = await self._store.run(
            self._store.codes_expire_script, [keys.codes, keys.counts],
            [int(self._clock()), limit],
        )
        return reply.integer("expired")

    async def state(self, vid: str, contact: Contact | None) -> CodeState:
        raw = await self._store.hgetall(self._store.keys.verif(vid))
        return CodeState(
            raw.get("status", "none"), bool(raw.get("delivered")), int(raw.get("sends", "0")),
            contact.channel if contact else "", contact.masked if contact else "",
        )


class Outbox:
    """Delivers queued messages with retries; many workers may run, each message once at a
    time (claims are leases, see outbox_claim-1.lua)."""

    def __init__(
        self, store: Store, sender: Sender, settings: Settings, clock: Clock,
        metrics: Metrics, render: Renderer,
    ) -> None:
        self._store = store
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
        reply = await self._store.run(
            self._store.outbox_claim_script, [self._store.keys.outbox],
            [int(self._clock()), CLAIM_LEASE_SECONDS, limit],
        )
        ids = reply.text("claimed").split()
        # Deliveries run side by side: one slow gateway call must not hold up the queue.
        await asyncio.gather(*(self._deliver(mid) for mid in ids))
        return len(ids)

    async def _deliver(self, mid: str) -> None:
        raw = await self._store.hgetall(self._store.keys.msg(mid))
        if not raw:
            # withdrawn by a resend between claim and now: just drop the claim
            await self._done(mid, raw, self._clock())
            return
        contact = Contact(raw.get("channel", "sms"), raw.get("address", ""))
        lang = raw.get("lang", "de")
        kind = raw.get("kind", "")
        message = Message(mid, kind, contact, lang, self._render(kind, lang, raw))
        try:
            await self._sender.send(message)
        except DeliveryFailed as exc:
            keys = self._store.keys
            reply = await self._store.run(
                self._store.outbox_fail_script,
                [keys.outbox, keys.outbox_created, keys.msg(mid),
                 raw.get("verif") or keys.msg(mid)],
                [int(self._clock()), mid, self._settings.outbox_max_attempts, BACKOFF_SECONDS],
            )
            outcome = reply.text("outcome")
            log.warning("delivery of a %s message to %s failed (%s): %s", kind,
                        contact.masked, exc, outcome)
            self._metrics.deliveries.labels(sender=self._sender.name, outcome=outcome).inc()
            return
        now = self._clock()
        await self._done(mid, raw, now)
        self._metrics.deliveries.labels(sender=self._sender.name, outcome="delivered").inc()
        created = raw.get("created")
        if created:
            self._metrics.delivery_delay.observe(max(0.0, now - float(created)))

    async def _done(self, mid: str, raw: Mapping[str, str], now: float) -> None:
        """The message left (or was withdrawn): outbox_done-5.lua, with the verification the
        message names (read before sending; a message's verification never changes)."""
        keys = self._store.keys
        await self._store.run(
            self._store.outbox_done_script,
            [keys.outbox, keys.outbox_created, keys.msg(mid), keys.codes,
             raw.get("verif") or keys.msg(mid)],
            [int(now), mid, self._settings.code_validity_seconds],
        )

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; sleeps until woken by a new message or the poll."""
        poll = self._settings.outbox_poll_seconds
        while not stop.is_set():
            # Cleared before looking, so a message queued while we look is not slept through.
            self._wakeup.clear()
            try:
                done = await self.run_once()
            except StoreUnavailable as exc:
                log.warning("outbox: store unavailable: %s", exc)
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
