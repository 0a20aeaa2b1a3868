"""The gate's own rules over the contract's tickets and passes.

Formats, signatures and rejections are the contract's (`vaccine_queue.contract`), shared
with the booking backend. What is the gate's alone: a ticket and a pass belong to one room;
tickets are issued here, with a fresh random id; and a ticket verified once is remembered,
so that a visitor's repeated status polls check its signature once per process.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from vaccine_queue.contract import (
    AdmissionPass,
    Clock,
    PassCodec,
    Ticket,
    TicketCodec,
    TicketExpired,
    TicketForeign,
)

# Verified tickets remembered per process (a waiting visitor polls every 2 to 120 s).
VERIFIED_CACHE_SIZE = 100_000


class TicketSigner:
    """Issues and checks the tickets and passes of one room."""

    def __init__(
        self,
        secret_keys: Sequence[str],
        room: str,
        *,
        ticket_max_age_s: int,
        clock: Clock = time.time,
        verified: dict[str, Ticket] | None = None,
    ) -> None:
        self.room = room
        self._clock = clock
        self._tickets = TicketCodec(secret_keys, max_age_s=ticket_max_age_s, clock=clock)
        self._passes = PassCodec(secret_keys, clock=clock)
        # Shared by the signers of a process's rooms: a ticket is verified once.
        self._verified: dict[str, Ticket] = {} if verified is None else verified

    @staticmethod
    def new_ticket_id() -> str:
        return secrets.token_urlsafe(9)

    def issue_ticket(self, epoch: str, number: int, frontier: int, *,
                     ticket_id: str | None = None, draw: int = 0) -> tuple[Ticket, str]:
        """Sign a ticket. A pre-queue ticket (number 0) is signed again, with the same id
        and its drawn number, once the draw has happened."""
        ticket = Ticket(self.room, epoch, number, ticket_id or self.new_ticket_id(), frontier,
                        int(self._clock()), draw)
        return ticket, self._tickets.sign(ticket)

    def load_ticket(self, token: str) -> Ticket:
        """Check a ticket's signature, age and room. Raises a `TokenRejected` subclass."""
        ticket = self.load_any_ticket(token)
        if ticket.room != self.room:
            raise TicketForeign()
        return ticket

    def load_any_ticket(self, token: str) -> Ticket:
        """Check a ticket's signature and age, whatever its room (which then says where
        it stands). A ticket verified before is taken from memory (its age is checked every
        time). Raises a `TokenRejected` subclass."""
        ticket = self._verified.get(token)
        if ticket is not None:
            # The same comparison itsdangerous makes, on whole seconds.
            if int(self._clock()) - int(ticket.issued_at) > self._tickets.max_age_s:
                self._verified.pop(token, None)
                raise TicketExpired()
            return ticket
        ticket = self._tickets.load(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = ticket
        return ticket

    def issue_pass(self, ticket: Ticket, expires_at: int) -> str:
        return self._passes.sign(AdmissionPass(ticket.room, ticket.ticket_id, expires_at))

    def load_pass(self, token: str) -> AdmissionPass:
        """Check a pass's signature, expiry and room. Raises a `TokenRejected` subclass."""
        return self._passes.load(token, room=self.room)

    def load_any_pass(self, token: str) -> AdmissionPass:
        """Check a pass's signature and expiry, whatever its room (the proxy turns a
        pass of another room back to this room's line, keeping it for its own)."""
        return self._passes.load(token)
