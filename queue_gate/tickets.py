"""Signing and checking tickets (a place in line) and admission passes (the way in).

A *ticket* is handed to every arriving visitor. It names the room, the room's epoch
(so tickets from before a room reset are recognised as stale), the visitor's number in
line and a random ticket id. A *pass* is handed out once the room's admission frontier
has reached the ticket's number; it names the room, the ticket id it was issued for and
when it expires. Both are HMAC-SHA256 signed with itsdangerous, each with its own salt,
from one list of secrets so keys can rotate: the newest signs, every listed key verifies.

The booking backend imports `PassVerifier` from here: the pass format is the gate's
contract with the application it protects.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import (
    BadSignature,
    Serializer,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_encode, want_bytes

TICKET_COOKIE = "qg_ticket"
PASS_COOKIE = "qg_pass"
PASS_HEADER = "X-Queue-Pass"

_TICKET_SALT = "queue-gate.ticket.v1"
_PASS_SALT = "queue-gate.pass.v1"
_SIGNER_KWARGS = {"digest_method": hashlib.sha256}

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Ticket:
    room: str
    epoch: str
    number: int
    ticket_id: str
    # Where the frontier stood when the visitor joined: the start of their progress bar.
    frontier_at_join: int
    # When it was signed (unix seconds), from the signature's timestamp; not in the payload.
    issued_at: float = 0.0
    # For a pre-queue ticket (number 0): the opening whose draw will number it.
    draw: int = 0

    @property
    def prequeued(self) -> bool:
        return self.number == 0


@dataclass(frozen=True, slots=True)
class AdmissionPass:
    room: str
    ticket_id: str
    expires_at: int


class TokenRejected(Exception):
    """A ticket or pass that must not be honoured; `code` is stable, `message` is for people."""

    code = "token_invalid"
    message = "This queue ticket is not valid."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class TicketInvalid(TokenRejected):
    code = "ticket_invalid"
    message = "This queue ticket is not valid. You have been given a new place in line."


class TicketExpired(TokenRejected):
    code = "ticket_expired"
    message = "This queue ticket has expired. Please join the queue again."


class TicketForeign(TokenRejected):
    code = "ticket_foreign"
    message = "This queue ticket belongs to another waiting room."


class TicketStale(TokenRejected):
    code = "ticket_stale"
    message = "This queue ticket is from before the waiting room was reset. Please join again."


class SessionEnded(TokenRejected):
    code = "session_ended"
    message = "The booking session of this ticket has ended. Please join the queue again."


class PassInvalid(TokenRejected):
    code = "pass_invalid"
    message = "This admission pass is not valid."


class PassExpired(TokenRejected):
    code = "pass_expired"
    message = "Your booking session has ended. Please join the queue again."


class PassShared(TokenRejected):
    code = "pass_shared"
    message = ("This admission is already in use in several other browsers. "
               "Please join the queue yourself: it keeps everyone's place fair.")


class PassForeign(TokenRejected):
    code = "pass_foreign"
    message = "This admission pass belongs to another waiting room."


def _keys_oldest_first(secret_keys: Sequence[str]) -> list[str]:
    """Our configuration lists secrets newest first; itsdangerous wants them oldest first."""
    keys = [key for key in secret_keys if key]
    if not keys:
        raise ValueError("at least one signing secret is required")
    return list(reversed(keys))


class _DerivedKeyCache:
    """itsdangerous derives the HMAC key from salt and secret on every call; derive each
    once. (Mixed into its signers; the cache lives as long as the serializer.)"""

    _derived: dict[bytes, bytes]

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        cache = self.__dict__.setdefault("_derived", {})
        name = want_bytes(secret_key) if secret_key is not None else b""
        key = cache.get(name)
        if key is None:
            key = super().derive_key(secret_key)  # type: ignore[misc]
            cache[name] = key
        return key  # type: ignore[no-any-return]


class _Signer(_DerivedKeyCache, Signer):
    pass


class _TimestampSigner(_DerivedKeyCache, TimestampSigner):
    clock: Clock = time.time

    def get_timestamp(self) -> int:
        return int(self.clock())


class _TicketSerializer(URLSafeTimedSerializer):
    """Timed tokens on an injected clock, with one signer per salt kept (not one per call)
    and no zlib: a ticket is a few dozen bytes, compressing them cost more than it saved."""

    def __init__(self, secret_keys: Sequence[str], salt: str, clock: Clock) -> None:
        super().__init__(_keys_oldest_first(secret_keys), salt=salt, signer=_TimestampSigner,
                         signer_kwargs=_SIGNER_KWARGS)
        self._clock = clock
        self._signers: dict[bytes, Any] = {}

    def make_signer(self, salt: str | bytes | None = None) -> Any:
        name = want_bytes(salt or self.salt or b"")
        signer: Any = self._signers.get(name)
        if signer is None:
            signer = super().make_signer(salt)
            signer.clock = self._clock
            self._signers[name] = signer
        return signer

    def dump_payload(self, obj: Any) -> bytes:
        # load_payload still reads compressed payloads, so older tickets stay valid.
        return base64_encode(Serializer.dump_payload(self, obj))


class _PassSerializer(URLSafeSerializer):
    def __init__(self, secret_keys: Sequence[str]) -> None:
        super().__init__(_keys_oldest_first(secret_keys), salt=_PASS_SALT, signer=_Signer,
                         signer_kwargs=_SIGNER_KWARGS)
        self._signer: Any = None

    def make_signer(self, salt: str | bytes | None = None) -> Any:
        if salt is not None and want_bytes(salt) != self.salt:
            return super().make_signer(salt)
        if self._signer is None:
            self._signer = super().make_signer(salt)
        return self._signer

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


# Verified tickets, so that a visitor's repeated polls check the signature once per process.
VERIFIED_CACHE_SIZE = 100_000


class TicketSigner:
    """Issues and checks tickets and passes for one room."""

    def __init__(
        self,
        secret_keys: Sequence[str],
        room: str,
        *,
        ticket_max_age_s: int,
        clock: Clock = time.time,
    ) -> None:
        self.room = room
        self._ticket_max_age_s = ticket_max_age_s
        self._clock = clock
        self._tickets = _TicketSerializer(secret_keys, _TICKET_SALT, clock)
        self._passes = PassVerifier(secret_keys, clock=clock)
        self._verified: dict[str, Ticket] = {}

    @staticmethod
    def new_ticket_id() -> str:
        return secrets.token_urlsafe(9)

    def issue_ticket(self, epoch: str, number: int, frontier: int, *,
                     ticket_id: str | None = None, draw: int = 0) -> tuple[Ticket, str]:
        """Sign a ticket. A pre-queue ticket (number 0) is signed again, with the same id
        and its drawn number, once the draw has happened."""
        ticket = Ticket(self.room, epoch, number, ticket_id or self.new_ticket_id(), frontier,
                        int(self._clock()), draw)
        token = self._tickets.dumps(
            [ticket.room, ticket.epoch, ticket.number, ticket.ticket_id, frontier, draw]
        )
        return ticket, token

    def load_ticket(self, token: str) -> Ticket:
        """Check a ticket's signature, age and room. Raises a `TokenRejected` subclass.

        A ticket verified before is taken from memory (its age is checked every time)."""
        ticket = self._verified.get(token)
        if ticket is not None:
            # The same comparison itsdangerous makes, on whole seconds.
            if int(self._clock()) - int(ticket.issued_at) > self._ticket_max_age_s:
                del self._verified[token]
                raise TicketExpired()
            return ticket
        try:
            raw, signed_at = self._tickets.loads(
                token, max_age=self._ticket_max_age_s, return_timestamp=True
            )
        except SignatureExpired as exc:  # before BadSignature: it is a subclass of it
            raise TicketExpired() from exc
        except BadSignature as exc:
            raise TicketInvalid() from exc
        ticket = _ticket_from_payload(raw, signed_at.timestamp())
        if ticket.room != self.room:
            raise TicketForeign()
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = ticket
        return ticket

    def issue_pass(self, ticket: Ticket, expires_at: int) -> str:
        return self._passes.sign(AdmissionPass(ticket.room, ticket.ticket_id, expires_at))

    def load_pass(self, token: str) -> AdmissionPass:
        return self._passes.load(token, room=self.room)


class PassVerifier:
    """Signs and checks admission passes; the booking backend uses it to refuse bypassers."""

    def __init__(self, secret_keys: Sequence[str], *, clock: Clock = time.time) -> None:
        self._serializer = _PassSerializer(secret_keys)
        self._clock = clock

    def sign(self, admission: AdmissionPass) -> str:
        token: str = self._serializer.dumps(
            [admission.room, admission.ticket_id, admission.expires_at]
        )
        return token

    def load(self, token: str, *, room: str | None = None) -> AdmissionPass:
        """Check signature, expiry and (when given) room. Raises a `TokenRejected` subclass."""
        try:
            raw = self._serializer.loads(token)
        except BadSignature as exc:
            raise PassInvalid() from exc
        admission = _pass_from_payload(raw)
        if room is not None and admission.room != room:
            raise PassForeign()
        if admission.expires_at <= self._clock():
            raise PassExpired()
        return admission


def _ticket_from_payload(raw: object, issued_at: float) -> Ticket:
    # A correctly signed payload of the wrong shape can only come from a bug or an old format.
    if (
        isinstance(raw, list)
        and len(raw) == 6
        and isinstance(raw[0], str)
        and isinstance(raw[1], str)
        and isinstance(raw[2], int)
        and isinstance(raw[3], str)
        and isinstance(raw[4], int)
        and isinstance(raw[5], int)
    ):
        return Ticket(raw[0], raw[1], raw[2], raw[3], raw[4], issued_at, raw[5])
    raise TicketInvalid()


def _pass_from_payload(raw: object) -> AdmissionPass:
    if (
        isinstance(raw, list)
        and len(raw) == 3
        and isinstance(raw[0], str)
        and isinstance(raw[1], str)
        and isinstance(raw[2], int)
    ):
        return AdmissionPass(raw[0], raw[1], raw[2])
    raise PassInvalid()
