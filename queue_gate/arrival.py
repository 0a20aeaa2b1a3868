"""Arriving visitors: the ticket they bring, a place in line for those without one, and the
cookie that keeps their ticket.

An app sends its ticket as `Authorization: Bearer <ticket>`, a browser in the ticket cookie
(path `/queue`: only the gate ever reads it, it is never sent on to the backend). Joining
asks Redis for the next number, unless the room is closed or the visitor's network address
has used up its joins for now (or, before opening, its draws of the pre-queue lottery).

A room with `challenge_bits` asks new visitors for proof of work first (`challenge.py`):
a join brings a solved challenge, which the join script accepts once.
"""

from __future__ import annotations

from typing import NoReturn

from aiohttp import web

from queue_gate.addresses import AddressPolicy
from queue_gate.admission import RoomView
from queue_gate.challenge import (
    ChallengeIssuer,
    ChallengeRejected,
    ChallengeRequired,
    ChallengeUsed,
    Solved,
)
from queue_gate.metrics import GateMetrics
from queue_gate.schedule import NextChange
from queue_gate.settings import Settings
from queue_gate.store import RoomStore
from queue_gate.tickets import TicketSigner
from vaccine_queue.contract import TICKET_COOKIE, Ticket, TicketStale, TokenRejected
from vaccine_queue.pages import Problem

TICKET_COOKIE_PATH = "/queue"


class JoinRefused(Exception):
    """The room is closed, or the visitor's network address used up its joins."""

    def __init__(self, reason: str, retry_after_s: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason  # "closed" | "limited" | "draw_limited"
        self.retry_after_s = retry_after_s

    @property
    def retry_after_minutes(self) -> int:
        return max(self.retry_after_s // 60, 1)


class Arrival:
    """Reads the ticket a visitor brings and gives new visitors their place in line."""

    def __init__(self, *, settings: Settings, store: RoomStore, signer: TicketSigner,
                 view: RoomView, policy: AddressPolicy, metrics: GateMetrics,
                 challenges: ChallengeIssuer) -> None:
        self._settings = settings
        self._room = settings.room
        self._store = store
        self._signer = signer
        self._view = view
        self._policy = policy
        self._metrics = metrics
        self.challenges = challenges

    @staticmethod
    def token(request: web.Request) -> str | None:
        """The ticket as sent: a bearer token (apps) or the ticket cookie (browsers)."""
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return request.cookies.get(TICKET_COOKIE) or None

    def ticket(self, request: web.Request) -> Ticket | None:
        """The visitor's ticket, None if they have none. Raises `TokenRejected` for a bad
        one (counted by reason)."""
        token = self.token(request)
        if token is None:
            return None
        try:
            ticket = self._signer.load_ticket(token)
        except TokenRejected as exc:
            self._metrics.rejections.labels(self._room, exc.code).inc()
            raise
        snapshot = self._view.snapshot
        if snapshot is not None and ticket.epoch != snapshot.epoch:
            self._metrics.rejections.labels(self._room, TicketStale.code).inc()
            raise TicketStale()
        return ticket

    async def join(self, request: web.Request,
                   solved: Solved | None = None) -> tuple[Ticket, str]:
        """The next place in line, or a pre-queue entry before opening: (ticket, token).
        `solved`: the visitor's checked proof of work, when the room asks for one. Raises
        `JoinRefused`, or `ChallengeUsed` for a solution that opened the door before."""
        address_key = self._policy.join_limit_key(self._policy.client_address(request))
        ticket_id = self._signer.new_ticket_id()
        result = await self._store.join(
            ticket_id, address=address_key,
            challenge=None if solved is None else (solved.challenge_id, solved.expires_at))
        if result.mode == "challenge_used":
            self.challenge_refused(ChallengeUsed())
        if result.mode in ("closed", "limited", "draw_limited"):
            reason = {"closed": "room_closed", "limited": "address_limit",
                      "draw_limited": "draw_limit"}[result.mode]
            self._metrics.joins_refused.labels(self._room, reason).inc()
            raise JoinRefused(result.mode, result.retry_after_s)
        self._metrics.tickets_issued.labels(self._room).inc()
        draw = int(result.opens_at) if result.opens_at is not None else 0
        return self._signer.issue_ticket(result.epoch, result.number, result.frontier,
                                         ticket_id=ticket_id, draw=draw)

    async def challenge_bits(self) -> int:
        """The proof of work the room asks of a new visitor now (0: none), from the snapshot:
        the operators' `challenge_bits`, risen with the room's join rate."""
        if self._view.snapshot is None:
            await self._view.refresh()  # normally the ticker has one already
        snapshot = self._view.snapshot
        return snapshot.challenge_bits_now if snapshot is not None else 0

    async def bits_accepted(self) -> int:
        """The least difficulty a solution may have been issued at: the current one, or one
        bit less while it rises (a visitor solving when it rose need not start again), never
        below the operators' `challenge_bits`."""
        bits = await self.challenge_bits()
        snapshot = self._view.snapshot
        floor = snapshot.config.challenge_bits if snapshot is not None else bits
        return max(bits - 1, floor) if bits else 0

    async def solution(self, token: object, nonce: object) -> Solved | None:
        """An app's or the waiting page's answer to a challenge, checked here (no Redis);
        None when the room asks for none. Raises `ChallengeRejected`."""
        bits = await self.challenge_bits()
        if not bits:
            return None
        if token is None and nonce is None:
            self.challenge_refused(ChallengeRequired())
        try:
            return self.challenges.verify(token, nonce, bits=await self.bits_accepted())
        except ChallengeRejected as exc:
            self.challenge_refused(exc)

    def challenge_refused(self, exc: ChallengeRejected) -> NoReturn:
        self._metrics.joins_refused.labels(self._room, exc.code).inc()
        raise exc

    async def challenge_problem(self, exc: ChallengeRejected) -> Problem:
        """428 with a fresh challenge: what an app is told when its join lacks proof of
        work or brings a bad one (`exc.code` says which)."""
        bits = await self.challenge_bits()
        return Problem(exc.code, 428, extra={
            "challenge": self.challenges.issue(bits).as_json() if bits else None})

    def refusal(self, refused: JoinRefused) -> Problem:
        """What an app is told when it cannot join (a browser gets a page instead)."""
        if refused.reason == "draw_limited":
            return Problem("too_many_draws", 429, retry_after=refused.retry_after_s,
                           params={"minutes": refused.retry_after_minutes})
        if refused.reason == "limited":
            return Problem("too_many_joins", 429, retry_after=refused.retry_after_s,
                           params={"minutes": refused.retry_after_minutes})
        # The operator's own words for why the room is closed, when they gave any.
        message = self.closed_message()
        upcoming = self._view.next_change  # a scheduled reopening, say
        return Problem("room_closed", 409, message_key="gate.closed",
                       extra={"state": "closed", **({"message": message} if message else {}),
                              **({"next_change": upcoming.as_json()} if upcoming else {})})

    def closed_message(self) -> str:
        snapshot = self._view.snapshot
        return snapshot.config.message if snapshot is not None else ""

    def next_change(self) -> NextChange | None:
        """The room's next scheduled closing, pause or opening, if one is pending."""
        return self._view.next_change

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(TICKET_COOKIE, token, max_age=self._settings.ticket_max_age_s,
                            path=TICKET_COOKIE_PATH, httponly=True, samesite="Lax",
                            secure=self._settings.cookie_secure)

    @staticmethod
    def clear_cookie(response: web.StreamResponse) -> None:
        response.del_cookie(TICKET_COOKIE, path=TICKET_COOKIE_PATH)
