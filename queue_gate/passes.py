"""Turning an admitted ticket into a pass, and the cookie that carries it.

Once the room's frontier has reached a ticket, its holder collects the ticket's one pass
(asking again, from a lost response or a second tab, gives the same session, not a new
one). Redis may still make them wait: every allowed session is in use, or they were
passed over while away and queue again at the front among those who came back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from queue_gate.metrics import GateMetrics
from queue_gate.settings import Settings
from queue_gate.store import Clock, RoomStore
from queue_gate.tickets import TicketSigner
from vaccine_queue.contract import PASS_COOKIE, SessionEnded, Ticket, TicketStale


@dataclass(frozen=True, slots=True)
class Admitted:
    """The way in: a signed pass and when it expires (unix seconds)."""

    token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class AtTheFront:
    """Not yet: `position` among those at the front; `returning` if passed over while away."""

    position: int
    returning: bool


class Passes:
    """Issues the pass of a ticket whose turn has come."""

    def __init__(self, *, settings: Settings, store: RoomStore, signer: TicketSigner,
                 metrics: GateMetrics, clock: Clock) -> None:
        self._room = settings.room
        self._secure = settings.cookie_secure
        self._store = store
        self._signer = signer
        self._metrics = metrics
        self._clock = clock
        # Called with the ticket id when its pass is first issued (turn messages forget the
        # visitor's contact then).
        self.on_issued: list[Callable[[str], Awaitable[None]]] = []

    async def collect(self, ticket: Ticket) -> Admitted | AtTheFront:
        """Issue (or issue again) the ticket's pass. Raises `TicketStale` or `SessionEnded`."""
        result = await self._store.issue_pass(ticket.ticket_id, ticket.number, ticket.epoch)
        if result.outcome == "stale":
            raise TicketStale()
        if result.outcome == "spent":
            self._metrics.rejections.labels(self._room, SessionEnded.code).inc()
            raise SessionEnded()
        if result.outcome == "requeued":
            # Passed over while away; back now, and first in line among returners.
            return AtTheFront(max(result.value, 1), returning=True)
        if result.outcome in ("waiting", "full"):
            # full: admitted, but every session allowed is in use; the next free one is theirs
            # or another admitted visitor's, whoever asks first.
            # waiting: our snapshot ran ahead of Redis (it was reset); wait at the front.
            return AtTheFront(1, returning=False)
        if result.outcome == "issued":
            self._metrics.passes_issued.labels(self._room).inc()
            self._metrics.time_waited.labels(self._room).observe(
                max(self._clock() - ticket.issued_at, 0.0))
            for hook in self.on_issued:
                await hook(ticket.ticket_id)
        return Admitted(self._signer.issue_pass(ticket, result.value), result.value)

    def set_cookie(self, response: web.StreamResponse, token: str, expires_at: int) -> None:
        """The pass for every path of the site, until it expires."""
        max_age = max(int(expires_at - self._clock()), 1)
        response.set_cookie(PASS_COOKIE, token, max_age=max_age, path="/", httponly=True,
                            samesite="Lax", secure=self._secure)
