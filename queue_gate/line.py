"""The line: where a ticket stands, from this process's picture of the room.

A waiting visitor's place is their number minus the room's frontier, with an estimate from
the measured admission rate; working it out costs no Redis round trip. Only when the
frontier has reached the ticket (its pass is collected) or a pre-queue ticket's draw has
happened does Redis have to be asked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from queue_gate.admission import RoomView
from queue_gate.passes import Admitted, Passes
from queue_gate.schedule import NextChange
from queue_gate.store import Clock, RoomStore
from queue_gate.tickets import TicketSigner
from vaccine_queue.contract import Ticket, TicketStale


@dataclass(frozen=True, slots=True)
class VisitorStatus:
    """Where a ticket stands, as the status API sends it (`as_json`)."""

    state: str  # prequeue | waiting | admitted | paused | closed | recovering
    position: int | None  # None in the pre-queue: places are drawn at opening
    estimated_wait_s: float | None
    poll_after_s: float
    message: str
    progress: float
    pass_token: str | None = None
    pass_expires_at: int | None = None
    # A ticket signed again (a pre-queue ticket that drew its number): replaces the old one.
    ticket_token: str | None = None
    opens_at: float | None = None
    returning: bool = False  # passed over while away, now first in line again
    # The room's next scheduled closing, pause or opening, if one is pending.
    next_change: NextChange | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "state": self.state,
            "position": self.position,
            "estimated_wait_s": None if self.estimated_wait_s is None
            else round(self.estimated_wait_s),
            "poll_after_s": self.poll_after_s,
            "message": self.message or None,
            "progress": round(self.progress, 3),
        }
        if self.opens_at is not None:
            body["opens_at"] = dt.datetime.fromtimestamp(self.opens_at, dt.UTC).isoformat()
        if self.next_change is not None:
            body["next_change"] = self.next_change.as_json()
        if self.ticket_token is not None:
            body["ticket"] = self.ticket_token
        if self.pass_token is not None:
            body["pass"] = self.pass_token
            body["pass_expires_at"] = self.pass_expires_at
        return body


class Line:
    """Where a ticket stands in the room's line, from this process's picture of the room."""

    def __init__(self, *, view: RoomView, store: RoomStore, signer: TicketSigner,
                 passes: Passes, clock: Clock) -> None:
        self._view = view
        self._store = store
        self._signer = signer
        self._passes = passes
        self._clock = clock

    async def standing(self, ticket: Ticket, *, just_joined: bool = False) -> VisitorStatus:
        """Where the ticket stands. Costs no Redis round trip unless it is the ticket's turn
        (or a pre-queue ticket's first poll after the draw). Raises `TokenRejected`."""
        view = self._view
        if view.snapshot is None:
            await view.refresh()  # normally the ticker has one already; not right after start
        snapshot = view.snapshot
        assert snapshot is not None
        reissued: str | None = None
        if ticket.prequeued:
            # Our own clock, not the snapshot's: the snapshot may be from just before opening.
            if snapshot.config.opens_at == ticket.draw and self._clock() < ticket.draw:
                return self.prequeue(ticket.draw, snapshot.now)
            drawn = await self._store.draw_place(ticket.ticket_id, ticket.draw)
            if drawn.outcome == "prequeue":
                return self.prequeue(ticket.draw, snapshot.now)
            if drawn.outcome == "stale":
                raise TicketStale()
            ticket, reissued = self._signer.issue_ticket(
                ticket.epoch, drawn.number, drawn.base, ticket_id=ticket.ticket_id)
        view.mark_seen(ticket.number)
        config = snapshot.config
        # A join's answer is fresher than the snapshot (in passthrough it admits at once).
        frontier = max(snapshot.frontier, ticket.frontier_at_join if just_joined else 0)
        returning = False
        if ticket.number <= frontier:
            collected = await self._passes.collect(ticket)
            if isinstance(collected, Admitted):
                return VisitorStatus(
                    state="admitted", position=0, estimated_wait_s=0.0, poll_after_s=0.0,
                    message="", progress=1.0, pass_token=collected.token,
                    pass_expires_at=collected.expires_at, ticket_token=reissued)
            returning = collected.returning
            position = collected.position
        else:
            position = ticket.number - snapshot.frontier
        estimate = view.estimate(position)
        span = ticket.number - ticket.frontier_at_join
        # The share of those ahead at joining who are through: full at place 1 (nobody
        # ahead), where `1 - position / span` left the bar empty for someone who joined there.
        progress = 1.0 if span <= 0 or returning else min(max(1 - (position - 1) / span, 0.0),
                                                          1.0)
        state = {"paused": "paused", "closed": "closed"}.get(config.mode, "waiting")
        if state == "waiting" and snapshot.backend_down:
            state = "recovering"  # adaptive admission: paused until the backend answers
        return VisitorStatus(
            state=state,
            position=max(position, 1),
            estimated_wait_s=estimate.wait_s,
            poll_after_s=estimate.poll_after_s,
            message=config.message,
            progress=progress,
            ticket_token=reissued,
            returning=returning,
            next_change=view.next_change,
        )

    def prequeue(self, opens_at: float, now: float) -> VisitorStatus:
        """Before opening: no place yet, the draw at opening gives one."""
        snapshot = self._view.snapshot
        assert snapshot is not None
        return VisitorStatus(
            state="prequeue",
            position=None,
            estimated_wait_s=None,
            poll_after_s=self._view.poll_after(max(opens_at - now, 0.0)),
            message=snapshot.config.message,
            progress=0.0,
            opens_at=opens_at,
            next_change=self._view.next_change,
        )
