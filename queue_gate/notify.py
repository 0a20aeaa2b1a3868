"""A message when the turn is near (issue 16): a waiting visitor leaves a phone number or an
e-mail address, and when about `QUEUE_GATE_NOTIFY_MINUTES` remain the booking backend sends
them a message (through its outbox, like a code) with a link that restores their ticket and
place on any device.

- Opt-in (`POST /queue/notify`): the contact is checked by the contract's rule and kept in
  Redis under the room's hash tag, keyed by ticket id, only as long as needed
  (lua/notify_optin-6.lua); never logged in clear.
- The sender (`Notifier`, one background task per process): each round one script claims
  the tickets whose turn is near for this process (lua/notify_claim-6.lua), so with several
  processes each visitor is asked for once; the backend queues one message per id, so a
  claim taken over after a crash does not send twice.
- Keeping the place: a visitor who opted in is marked present (as a poll would) until the
  message plus `QUEUE_GATE_NOTIFY_GRACE_S`; after that the usual abandonment rules apply.
- Deletion: the contact goes once the message is sent, when the pass is issued, when the
  visitor withdraws, and at the latest with the ticket's lifetime.
- The restore link (`/queue/restore?t=`): signed with a serializer of its own over the
  gate's rotatable secrets, short-lived, usable once; it sets the ticket cookie on the
  device that opens it and shows the waiting page at the same place.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from queue_gate.admission import RoomView
from queue_gate.keys import (
    clock_key,
    metrics_key,
    notifier_key,
    pages_key,
    room_view_key,
    rooms_key,
    run_notifier_key,
    settings_key,
    store_key,
)
from queue_gate.metrics import GateMetrics
from queue_gate.responses import NO_STORE, is_api, safe_next, see_other, wait_url
from queue_gate.settings import Settings
from queue_gate.store import (
    Clock,
    GateUnavailable,
    RedisClient,
    RoomKeys,
    _redis_trouble,
    _Script,
)
from vaccine_queue.background import background
from vaccine_queue.contract import (
    TURN_NEAR_PATH,
    ContactInvalid,
    Ticket,
    TokenRejected,
    TurnNear,
    normalise_contact,
)
from vaccine_queue.i18n import request_language, translator
from vaccine_queue.pages import Problem

log = logging.getLogger(__name__)

NOTIFY_PATH = "/queue/notify"
RESTORE_PATH = "/queue/restore"
# Shows the waiting page that a message was asked for, and to which (masked) contact.
NOTIFY_COOKIE = "qg_notify"
# How often each process looks for visitors whose turn is near.
ROUND_S = 2.0
# Most tickets one round claims (the rest come in the next rounds).
CLAIM_LIMIT = 200
# A claim outlives any ask of the backend (its timeout), then another process may ask.
CLAIM_S = 60
ASK_TIMEOUT_S = 10.0
# After the backend could not be reached: ask again for this ticket after this long.
RETRY_S = 30
_RESTORE_SALT = "queue-gate.restore.v1"


def masked(channel: str, address: str) -> str:
    """Safe to show and to log: `+49151*****678`, `n***@example.org`."""
    if channel == "email":
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return address[:6] + "*" * max(len(address) - 9, 3) + address[-3:]


# --- The restore link ------------------------------------------------------------------


class RestoreRejected(Exception):
    code = "restore_invalid"
    status = 400


class RestoreExpired(RestoreRejected):
    code = "restore_expired"
    status = 410


class RestoreUsed(RestoreRejected):
    code = "restore_used"
    status = 410


class RestoreLinks:
    """Signs and checks restore tokens: one purpose, its own salt, the gate's secrets (the
    newest signs, all verify), valid for `max_age_s` on an injected clock."""

    def __init__(self, secret_keys: Sequence[str], room: str, *, max_age_s: int,
                 clock: Clock = time.time) -> None:
        signer = type("_ClockSigner", (TimestampSigner,),
                      {"get_timestamp": lambda _self: int(clock())})
        self._serializer = URLSafeTimedSerializer(
            list(reversed([key for key in secret_keys if key])), salt=_RESTORE_SALT,
            signer=signer, signer_kwargs={"digest_method": hashlib.sha256})
        self.room = room
        self.max_age_s = max_age_s

    def sign(self, ticket: Ticket) -> str:
        token: str = self._serializer.dumps(
            [ticket.room, ticket.epoch, ticket.number, ticket.ticket_id,
             ticket.frontier_at_join])
        return token

    def load(self, token: str) -> tuple[str, int, str, int]:
        """(epoch, number, ticket id, frontier at join). Raises `RestoreRejected`."""
        if not token or not token.isascii() or len(token) > 1000:
            raise RestoreRejected()
        try:
            raw = self._serializer.loads(token, max_age=self.max_age_s)
        except SignatureExpired as exc:  # before BadSignature: it is a subclass of it
            raise RestoreExpired() from exc
        except BadSignature as exc:
            raise RestoreRejected() from exc
        if not (isinstance(raw, list) and len(raw) == 5 and raw[0] == self.room
                and isinstance(raw[1], str) and isinstance(raw[2], int)
                and isinstance(raw[3], str) and isinstance(raw[4], int) and raw[2] > 0):
            raise RestoreRejected()
        return raw[1], raw[2], raw[3], raw[4]


# --- Redis -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    ticket_id: str
    number: int
    channel: str
    address: str
    lang: str
    site: str
    epoch: str
    frontier_at_join: int


@dataclass(frozen=True, slots=True)
class Round:
    claimed: list[Claimed]
    forgotten: int
    kept: list[int]


class NotifyStore:
    """The room's turn-message scripts (lua/notify_*.lua), their replies read by name."""

    def __init__(self, client: RedisClient, settings: Settings, *,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.keys = RoomKeys(settings.room)
        self._settings = settings
        self._clock = clock
        # Opt-ins and sent messages must outlive a failover: the visitor was told.
        self._optin = _Script(client, "notify_optin-6.lua")
        self._claim = _Script(client, "notify_claim-6.lua")
        self._done = _Script(client, "notify_done-6.lua")
        self._forget = _Script(client, "notify_forget-6.lua")

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    async def opt_in(self, ticket: Ticket, channel: str, address: str, lang: str,
                     site: str) -> str:
        """"saved", or "sent" when the ticket's message went out already."""
        contact = json.dumps({"c": channel, "a": address, "l": lang, "u": site,
                              "e": ticket.epoch, "f": ticket.frontier_at_join})
        reply = await self._optin(
            self.keys.notify_script_keys,
            [ticket.ticket_id, ticket.number, contact, self._now_arg(),
             self._settings.ticket_max_age_s], replicated=True)
        return reply.text("outcome")

    async def claim(self, highest: int, *,
                    kept: tuple[int, int] | None = None) -> Round:
        """Claim the pending tickets numbered up to `highest`; with `kept` = (above,
        upto), also answer the kept places numbered in that range."""
        above, upto = kept if kept is not None else ("", 0)
        reply = await self._claim(self.keys.notify_script_keys,
                                  [self._now_arg(), highest, CLAIM_S, CLAIM_LIMIT, above,
                                   upto])
        claimed = []
        for item in json.loads(reply.text("claimed")):
            contact = json.loads(item["contact"])
            claimed.append(Claimed(str(item["t"]), int(item["n"]), str(contact["c"]),
                                   str(contact["a"]), str(contact["l"]), str(contact["u"]),
                                   str(contact["e"]), int(contact["f"])))
        return Round(claimed, reply.integer("forgotten"),
                     [int(n) for n in json.loads(reply.text("kept"))])

    async def done(self, ticket_id: str, outcome: str, at: float) -> str:
        reply = await self._done(self.keys.notify_script_keys,
                                 [ticket_id, outcome, self._now_arg(), repr(at)],
                                 replicated=outcome == "sent")
        return reply.text("outcome")

    async def forget(self, ticket_id: str) -> bool:
        reply = await self._forget(self.keys.notify_script_keys, [ticket_id])
        return reply.flag("forgotten")

    async def use_link(self, ticket_id: str, max_age_s: int) -> bool:
        """Mark the ticket's restore link used; False if it was used before."""
        try:
            first = await self.client.set(self.keys.restored(ticket_id), "1", nx=True,
                                          ex=max_age_s)
        except Exception as exc:
            if not _redis_trouble(exc):
                raise
            raise GateUnavailable(str(exc)) from exc
        return bool(first)


# --- The sender ------------------------------------------------------------------------


def near_number(view: RoomView, minutes: int) -> int:
    """The highest ticket number whose estimated wait is at most `minutes` (the waiting
    page's own estimate: places ahead divided by the frontier's speed)."""
    snap = view.snapshot
    assert snap is not None
    if snap.config.mode == "passthrough":
        return snap.seq
    per_place = view.estimate(1).wait_s
    if per_place is None or per_place <= 0:
        return snap.frontier  # paused, closed or no rate: nobody's turn is near
    return snap.frontier + math.floor(minutes * 60 / per_place)


class Notifier:
    """One process's sender of turn messages (see the module's docstring)."""

    def __init__(self, *, settings: Settings, store: NotifyStore, visitors: NotifyStore,
                 view: RoomView, links: RestoreLinks, metrics: GateMetrics,
                 session: aiohttp.ClientSession) -> None:
        self._settings = settings
        # Rounds use the control pool (as the ticker); visitors' requests the large pool.
        self.store = store
        self.visitors = visitors
        self._view = view
        self.links = links
        self._metrics = metrics
        self._session = session
        self._kept_bucket: int | None = None
        self._kept_upto = 0

    async def forget(self, ticket_id: str) -> None:
        """The visitor was admitted: their contact goes (Redis trouble: the TTL takes it)."""
        try:
            await self.visitors.forget(ticket_id)
        except GateUnavailable as exc:
            log.warning("room %s: could not forget a turn contact: %s", self.store.keys.room,
                        exc)

    async def run_once(self) -> int:
        """One round: forget what is due, keep places, ask for the messages whose time has
        come. Returns how many were asked for."""
        view = self._view
        if view.snapshot is None:
            await view.refresh()
        snap = view.snapshot
        assert snap is not None
        grace = self._settings.abandon_grace_s
        bucket = int(snap.now // (grace / 2)) if grace else None
        # A mark lasts at least the grace period; marks are renewed every half of it. Only
        # places the frontier may reach before then need one: twice as far as the fastest
        # of the configured, effective and measured rates goes in a grace period.
        rate = max(snap.config.rate_per_minute, snap.effective_rate,
                   view.frontier_per_minute() or 0.0)
        upto = snap.frontier + math.ceil(2 * grace * rate / 60)
        # Again at once when the reach grew (an operator raised the rate).
        want_kept = bucket is not None and (bucket != self._kept_bucket
                                            or upto > self._kept_upto)
        if snap.config.mode == "passthrough":
            want_kept = False  # everybody is admitted as they come
        result = await self.store.claim(near_number(view, self._settings.notify_minutes),
                                        kept=(snap.frontier, upto) if want_kept else None)
        if want_kept:
            # As if each polled: the next tick marks them present for this presence bucket.
            for number in result.kept:
                view.mark_seen(number)
            self._kept_bucket, self._kept_upto = bucket, upto
        await asyncio.gather(*(self._ask(claimed) for claimed in result.claimed))
        return len(result.claimed)

    def _minutes_left(self, number: int) -> int:
        snap = self._view.snapshot
        assert snap is not None
        wait = self._view.estimate(max(number - snap.frontier, 1)).wait_s
        minutes = self._settings.notify_minutes if wait is None else math.ceil(wait / 60)
        return min(max(minutes, 0), self._settings.notify_minutes)

    async def _ask(self, claimed: Claimed) -> None:
        """Ask the booking backend to send one visitor's message; record the outcome."""
        settings = self._settings
        room = self.store.keys.room
        ticket = Ticket(room, claimed.epoch, claimed.number, claimed.ticket_id,
                        claimed.frontier_at_join)
        link = f"{claimed.site.rstrip('/')}{RESTORE_PATH}?t={quote(self.links.sign(ticket))}"
        turn = TurnNear(f"{room}:{claimed.ticket_id}", claimed.channel, claimed.address,
                        claimed.lang, self._minutes_left(claimed.number), link)
        outcome = "retry"
        try:
            async with self._session.post(
                    settings.notify_url.rstrip("/") + TURN_NEAR_PATH, json=turn.as_json(),
                    headers={"Authorization": f"Bearer {settings.notify_token}"}) as response:
                if response.status == 202:
                    outcome = "sent"
                elif response.status == 400:
                    outcome = "failed"  # the backend refuses this contact: asking again won't help
                log.log(logging.DEBUG if outcome == "sent" else logging.WARNING,
                        "room %s: turn message to %s: backend answered %d", room,
                        masked(claimed.channel, claimed.address), response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("room %s: turn message to %s: backend not reached (%s)", room,
                        masked(claimed.channel, claimed.address), type(exc).__name__)
        # The room's clock (Redis TIME in production, as the scripts'), as of the last tick.
        snap = self._view.snapshot
        assert snap is not None
        at = snap.now + (settings.notify_grace_s if outcome != "retry" else RETRY_S)
        try:
            await self.store.done(claimed.ticket_id, outcome, at)
        except GateUnavailable as exc:
            # The claim ends by itself; the backend queues the id once if asked again.
            log.warning("room %s: could not record a turn message: %s", room, exc)
        self._metrics.turn_messages.labels(room, "retried" if outcome == "retry"
                                           else outcome).inc()

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except GateUnavailable as exc:
                self._metrics.redis_errors.labels(self.store.keys.room, "notify").inc()
                log.warning("room %s: turn messages: %s", self.store.keys.room, exc)
            await asyncio.sleep(ROUND_S)


async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sender's cleanup context, after the ticker's (it uses the room view): its own
    HTTP client to the backend's admin port, and the background task (unless tests tick)."""
    settings = app[settings_key]
    if not settings.notify_enabled:
        yield
        return
    view, now = app[room_view_key], app[clock_key]
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ASK_TIMEOUT_S))
    redis_clock = None if now is time.time else now  # None: Redis TIME, as the room's
    notifier = app[notifier_key] = Notifier(
        settings=settings,
        store=NotifyStore(view.store.client, settings, clock=redis_clock),
        visitors=NotifyStore(app[store_key].client, settings, clock=redis_clock),
        view=view,
        links=RestoreLinks(settings.secrets, settings.room,
                           max_age_s=settings.notify_link_max_age_s, clock=now),
        metrics=app[metrics_key], session=session)
    app[rooms_key].first.passes.on_issued.append(notifier.forget)
    try:
        if app.get(run_notifier_key, True):
            async with background(notifier.run(), f"turn-messages-{settings.room}"):
                yield
        else:
            yield
    finally:
        await session.close()


# --- The visitor's side ----------------------------------------------------------------


def page_context(request: web.Request, *, page: bool = False, error: str = "",
                 contact: str = "", offered: bool = True) -> dict[str, object]:
    """What the notify part shows: offered at all, whether (and to which masked contact) a
    message was asked for in this browser; on its own page (`page`), a refusal's text and
    the contact as typed."""
    settings = request.app[settings_key]
    return {"enabled": settings.notify_enabled and offered, "minutes": settings.notify_minutes,
            "asked": unquote(request.cookies.get(NOTIFY_COOKIE, ""))[:300],
            "action": NOTIFY_PATH, "cancelled": request.query.get("notify") == "cancelled",
            "page": page, "error": error, "contact": contact[:254]}


async def notify_page(request: web.Request) -> web.Response:
    """GET /queue/notify: the form on a page of its own, for browsers without JavaScript
    (their waiting page reloads itself, which would wipe a number being typed)."""
    app = request.app
    if not app[settings_key].notify_enabled:
        raise web.HTTPNotFound()
    next_path = safe_next(request.query.get("next"))
    try:
        ticket = app[rooms_key].first.arrival.ticket(request)
    except TokenRejected:
        ticket = None
    if ticket is None:
        return see_other(wait_url(next_path))
    return app[pages_key].render(request, "notify.html", {
        "notify": page_context(request, page=True), "next_path": next_path},
        headers=NO_STORE)


async def opt_in(request: web.Request) -> web.Response:
    """POST /queue/notify (form: contact, consent; or action=cancel): ask for a message
    when the turn is near, or withdraw. Browsers go back to the waiting page (303); apps
    and the page's script (Accept: application/json) get JSON."""
    app = request.app
    settings = app[settings_key]
    if not settings.notify_enabled:
        raise web.HTTPNotFound()
    notifier = app[notifier_key]
    try:
        ticket = app[rooms_key].first.arrival.ticket(request)
    except TokenRejected as exc:
        raise Problem(exc.code, 401) from exc
    if ticket is None:
        raise Problem("ticket_missing", 401)
    form = await request.post()
    next_path = safe_next(str(form.get("next") or request.query.get("next") or ""))
    if form.get("action") == "cancel":
        await notifier.visitors.forget(ticket.ticket_id)
        response = _answer(request, next_path, {"notify": "cancelled"},
                           then="&notify=cancelled")
        response.del_cookie(NOTIFY_COOKIE, path="/queue")
        return response
    if ticket.prequeued:
        raise Problem("notify_prequeue", 409)
    try:
        if form.get("consent") not in ("1", "on", "yes"):
            raise Problem("notify_consent", 400, field="consent")
        try:
            channel, address = normalise_contact(form.get("contact"))
        except ContactInvalid as exc:
            raise Problem(exc.code, 400, field="contact") from exc
    except Problem as refused:
        if is_api(request):
            raise
        # The form again, with what was typed and what is wrong with it.
        typed = form.get("contact")
        return app[pages_key].render(request, "notify.html", {
            "notify": page_context(
                request, page=True, error=refused.message(translator(request_language(request))),
                contact=typed if isinstance(typed, str) else ""),
            "next_path": next_path}, status=400, headers=NO_STORE)
    site = settings.public_url or str(request.url.origin())
    lang = request_language(request)
    outcome = await notifier.visitors.opt_in(ticket, channel, address, lang, site)
    if outcome == "saved":
        app[metrics_key].turn_optins.labels(settings.room).inc()
    shown = masked(channel, address)
    response = _answer(request, next_path, {"notify": outcome, "contact": shown})
    if outcome != "saved":
        return response  # the message went out already: nothing was stored
    # Quoted: '+', '*' and '@' would make the cookie's value a quoted string.
    response.set_cookie(NOTIFY_COOKIE, quote(shown, safe=""), max_age=settings.ticket_max_age_s,
                        path="/queue", httponly=True, samesite="Lax",
                        secure=settings.cookie_secure)
    return response


def _answer(request: web.Request, next_path: str, body: dict[str, str],
            then: str = "") -> web.Response:
    if is_api(request):
        return web.json_response(body, headers=NO_STORE)
    return see_other(wait_url(next_path) + then)


def _restore_token(raw: object) -> str:
    return raw if isinstance(raw, str) else ""


def _check_link(request: web.Request, token: str) -> tuple[str, int, str, int]:
    try:
        return request.app[notifier_key].links.load(token)
    except RestoreRejected as exc:
        raise Problem(exc.code, exc.status) from exc


async def restore_page(request: web.Request) -> web.Response:
    """GET /queue/restore?t=: the link from the message. Shows a button that takes the
    place over on this device (a POST: link previews in messengers must not use it up)."""
    if not request.app[settings_key].notify_enabled:
        raise web.HTTPNotFound()
    token = _restore_token(request.query.get("t"))
    _check_link(request, token)
    return request.app[pages_key].render(request, "restore.html", {
        "token": token, "action": RESTORE_PATH}, headers={**NO_STORE, "Referrer-Policy":
                                                          "no-referrer"})


async def restore(request: web.Request) -> web.Response:
    """POST /queue/restore (form: t): use the link once: this browser gets the ticket and
    the waiting page at the same place (or the booking pages, if the turn came)."""
    app = request.app
    if not app[settings_key].notify_enabled:
        raise web.HTTPNotFound()
    form = await request.post()
    epoch, number, ticket_id, frontier = _check_link(request, _restore_token(form.get("t")))
    notifier = app[notifier_key]
    if not await notifier.visitors.use_link(ticket_id, notifier.links.max_age_s):
        raise Problem(RestoreUsed.code, RestoreUsed.status)
    room = app[rooms_key].first  # turn messages are the environment's room's
    _, token = room.signer.issue_ticket(epoch, number, frontier, ticket_id=ticket_id)
    response = see_other(wait_url("/"))
    app[rooms_key].first.arrival.set_cookie(response, token)
    return response


def setup_routes(app: web.Application) -> None:
    app.router.add_get(NOTIFY_PATH, notify_page)
    app.router.add_post(NOTIFY_PATH, opt_in)
    app.router.add_get(RESTORE_PATH, restore_page)
    app.router.add_post(RESTORE_PATH, restore)
