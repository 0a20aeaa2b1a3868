"""Everything the public app and the admin app share, built from settings in one place.

Nothing here connects at construction time; `open` and `close` are called from the apps'
cleanup contexts, counted, so two apps in one process can share one backend (and its one
database pool) and the last one to stop closes the pool.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Callable

from itsdangerous import URLSafeTimedSerializer
from prometheus_client import CollectorRegistry

from booking_backend.catalogue import CatalogueCache, demo_catalogue_json
from booking_backend.db import Database, StoreUnavailable
from booking_backend.identity import IdentityHasher
from booking_backend.inbox import InboxSender
from booking_backend.inventory import Inventory, generate_slots
from booking_backend.invitations import Invitations
from booking_backend.levels import Levels, counts, read_levels
from booking_backend.metrics import Metrics
from booking_backend.migrations import migrate
from booking_backend.service import Service
from booking_backend.settings import Settings
from booking_backend.verification import ConsoleSender, Outbox, Sender, Verifier, WebhookSender
from booking_backend.waitlist import Waitlist
from vaccine_queue.contract import PassCodec
from vaccine_queue.i18n import DEFAULT_LANGUAGE, LANGUAGES, translator

log = logging.getLogger(__name__)

Clock = Callable[[], float]
CSRF_SALT = "booking.csrf.v1"
DEMO_LOCK = 0x626B64656D6F  # pg_advisory_lock key of the demo's data load ("bkdemo")


def csrf_serializer(secret_keys: tuple[str, ...]) -> URLSafeTimedSerializer:
    """CSRF tokens: their own salt. Our secrets are listed newest first; itsdangerous signs
    with the last one of its list and verifies with all."""
    return URLSafeTimedSerializer(list(reversed(secret_keys)), salt=CSRF_SALT)


class Backend:
    def __init__(
        self, settings: Settings, *, clock: Clock | None = None,
        registry: CollectorRegistry | None = None, sender: Sender | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or time.time
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.db = Database(settings.database_url, size=settings.database_pool_size,
                           acquire_timeout=settings.database_acquire_timeout,
                           statement_timeout=settings.database_statement_timeout)
        signing = settings.secrets
        if not signing:
            # Demo/dev only (check_startable refuses this otherwise): passes from a gate
            # cannot be checked, so this only works with BOOKING_REQUIRE_PASS=0.
            signing = (secrets.token_urlsafe(32),)
            log.warning("no QUEUE_GATE_SECRETS: using a random secret for this process")
        identity_key = settings.identity_key or hashlib.sha256(
            f"demo-identity-key:{settings.deployment}".encode()).hexdigest()
        self.hasher = IdentityHasher(identity_key)
        self.pass_codec = PassCodec(signing, clock=self.clock)
        self.csrf = csrf_serializer(signing)
        self.catalogue = CatalogueCache(self.db)
        self.inventory = Inventory(self.db, settings, self.clock)
        self.invitations = Invitations(self.db, self.hasher, self.clock)
        self.waitlist = Waitlist(self.db, self.clock)
        self.webhook: WebhookSender | None = None
        # The demo always logs its messages (codes included): that is how it is used.
        if sender is None and settings.sender == "webhook" and not settings.demo:
            self.webhook = WebhookSender(settings.webhook_url, settings.webhook_token)
        self.sender: Sender = (sender or self.webhook
                               or ConsoleSender(demo_or_dev=settings.dev_or_demo))
        # The demo shows what it sent on its inbox page (booking_backend/inbox.py).
        self.inbox = InboxSender(self.sender, self.clock) if settings.demo else None
        self.outbox = Outbox(self.db, self.inbox or self.sender, settings, self.clock, self.metrics,
                             self.render_message)
        self.verifier = Verifier(self.db, settings, self.clock, self.hasher, self.metrics,
                                 self.outbox.wakeup)
        self.service = Service(settings, self.db, self.clock, self.metrics, self.catalogue,
                               self.inventory, self.verifier, self.waitlist, self.invitations,
                               self.hasher)
        self._users = 0

    def render_message(self, kind: str, lang: str, fields: dict[str, str]) -> str:
        minutes = max(1, self.settings.code_validity_seconds // 60)
        key = {"code": "msg.code", "cancel_code": "msg.cancel_code",
               "assigned": "msg.assigned", "booked": "msg.booked",
               "centre_cancelled": "msg.centre_cancelled",
               "centre_cancelled_second": "msg.centre_cancelled_second",
               "turn_near": "msg.turn_near"}.get(kind, "msg.code")
        # A message queued with a language no longer offered is sent in the default one.
        t = translator(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
        if kind == "turn_near":  # the gate's estimate of the minutes left, and its link
            minutes = int(fields.get("minutes") or 0)
        return t(key, code=fields.get("code", ""), minutes=minutes,
                 booking=fields.get("booking", ""), reason=fields.get("reason", ""),
                 link=fields.get("link", ""))

    async def open(self) -> None:
        self._users += 1
        if self._users > 1:
            return
        if self.webhook is not None:
            await self.webhook.open()
        if self.settings.demo:
            # The demo migrates by itself; a deployment runs `booking-backend migrate`.
            try:
                await migrate(self.settings.database_url)
            except StoreUnavailable as exc:
                log.warning("demo: database not migrated, unavailable: %s", exc)
        await self.db.open()
        if self.settings.demo:
            try:
                await self.load_demo_if_empty()
            except StoreUnavailable as exc:
                log.warning("demo data not loaded, database unavailable: %s", exc)

    async def close(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        if self.webhook is not None:
            await self.webhook.close()
        await self.db.close()

    async def levels(self) -> Levels:
        """The deployment's units, bookings, waiting people, outbox and expiry counters."""
        return await read_levels(self.db)

    async def counts(self) -> dict[str, int]:
        return await counts(self.db)

    async def load_demo_if_empty(self) -> None:
        """Demo: the shipped centres and slots for the coming weeks, loaded by one process."""
        async with self.db.connection() as conn:
            # Race: demo processes starting together: one loads, the others find it loaded.
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", DEMO_LOCK):
                return
            try:
                if await self.catalogue.get() is None:
                    await self.catalogue.save(demo_catalogue_json())
                    log.info("demo: loaded the shipped centres")
                if await self.inventory.is_empty():
                    units = await self.generate_demo_slots(share=0.0)
                    log.info("demo: generated %d slot units", units)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", DEMO_LOCK)

    async def generate_demo_slots(
        self, *, first_day: dt.date | None = None, days: int | None = None, units: int = 2,
        step_minutes: int = 30, share: float | None = None,
    ) -> int:
        catalogue = await self.catalogue.get()
        if catalogue is None:
            return 0
        start = first_day or (self.service.today() + dt.timedelta(days=1))
        per_centre = generate_slots(
            catalogue, start, days or self.settings.demo_days, tz=self.settings.timezone,
            units=units, step_minutes=step_minutes,
        )
        added = 0
        for cid, slots in per_centre.items():
            outcome = await self.inventory.release_slots(catalogue.centres[cid], slots,
                                                         share=share)
            added += int(outcome.value)
        return added



