"""The contract between the queue gate and the application it protects.

The gate and the booking backend meet at the pass: its format, the cookie and header that
carry it, the header with which the backend ends a visitor's session, and the path where a
visitor without a pass is sent to queue. Both services import this module and nothing else
from each other.

A *ticket* is handed to every arriving visitor. It names the room, the room's epoch (so
tickets from before a room reset are recognised as stale), the visitor's number in line and
a random ticket id. A *pass* is handed out once the room's admission frontier has reached
the ticket's number; it names the room, the ticket id it was issued for and when it
expires. Both are HMAC-SHA256 signed with itsdangerous, each with its own salt, from one
list of secrets so keys can rotate: the newest signs, every listed key verifies.

Rejections carry a stable `code`; the words people read are in the catalogue under
`err.<code>` (see `vaccine_queue.i18n`), in their language.
"""

from __future__ import annotations

import hashlib
import re
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
# Sent by the protected application when a visitor's business is done (a booking
# confirmed): the gate ends the pass, so the session frees a place for the next visitor.
END_SESSION_HEADER = "X-Queue-End-Session"
# Where a visitor without a valid pass joins the line (`?next=` the path they wanted).
QUEUE_WAIT_PATH = "/queue/wait"
# What the booking backend serves without a pass, guarded by the browser's own session or
# the booking code instead: the confirmation (reloaded after the booking ended the queue
# session), managing or cancelling a booking, its static files. A gate in front of it
# proxies these without a pass unless told otherwise (QUEUE_GATE_BYPASS_PATHS).
PASS_FREE_PREFIXES = ("/confirmation", "/manage", "/static")

# Sent by the protected application on every response: how much more load it can take
# now, a number from 0 (saturated) to 1 (idle), from its own pool and recent latency. A
# gate in adaptive mode lowers its admission rate when the hint is low (docs/api.md).
CAPACITY_HEADER = "X-Backend-Capacity"
# A path the protected application answers with no work and no pass (HEAD, 204, with the
# capacity header): the gate probes it while no visitor's request shows whether it lives.
CAPACITY_PATH = "/capacity"

# The gate asks the protected application to send a visitor the message that their turn is
# near (`TurnNear`, as JSON), on the application's private admin port, with
# `Authorization: Bearer <shared notify token>`; it answers 202 once the message is queued
# (again 202 for an id it queued before: the gate may ask twice, it is sent once).
TURN_NEAR_PATH = "/internal/turn-near"
# The message kind the application queues it under.
TURN_NEAR_KIND = "turn_near"

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
    """A ticket or pass that must not be honoured. `code` is stable; people read the
    catalogue's `err.<code>` in their language."""

    code = "token_invalid"

    def __init__(self) -> None:
        super().__init__(self.code)


class TicketInvalid(TokenRejected):
    code = "ticket_invalid"


class TicketExpired(TokenRejected):
    code = "ticket_expired"


class TicketForeign(TokenRejected):
    code = "ticket_foreign"


class TicketStale(TokenRejected):
    code = "ticket_stale"


class SessionEnded(TokenRejected):
    code = "session_ended"


class PassInvalid(TokenRejected):
    code = "pass_invalid"


class PassExpired(TokenRejected):
    code = "pass_expired"


class PassShared(TokenRejected):
    code = "pass_shared"


class PassForeign(TokenRejected):
    code = "pass_foreign"


class ContactInvalid(ValueError):
    """A phone number or e-mail address that cannot be used; `code` is `contact_missing`,
    `email_invalid` or `phone_invalid` (the catalogue's `err.<code>`)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[a-z]{2,24}$")


def normalise_contact(raw: object) -> tuple[str, str]:
    """(channel, address) of a German or international phone number ("sms",
    `+4915112345678`) or an e-mail address ("email", lower case): the one rule both
    services apply to a contact. Raises `ContactInvalid`."""
    if not isinstance(raw, str) or not raw.strip():
        raise ContactInvalid("contact_missing")
    value = raw.strip()
    if "@" in value:
        email = value.lower()
        if len(email) > 254 or not _EMAIL.match(email):
            raise ContactInvalid("email_invalid")
        return "email", email
    digits = re.sub(r"[\s()/.\-]", "", value)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0"):
        digits = "+49" + digits[1:]
    elif not digits.startswith("+"):
        raise ContactInvalid("phone_invalid")
    if not (digits[1:].isascii() and digits[1:].isdigit()) or not 8 <= len(digits) - 1 <= 15:
        raise ContactInvalid("phone_invalid")
    return "sms", digits


@dataclass(frozen=True, slots=True)
class TurnNear:
    """The gate's request for a "your turn is near" message. `id` is stable per visitor
    and room (the application queues it at most once); `link` restores the visitor's place
    on any device; `minutes` is about how long is left."""

    id: str
    channel: str
    address: str
    lang: str
    minutes: int
    link: str

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "channel": self.channel, "address": self.address,
                "lang": self.lang, "minutes": self.minutes, "link": self.link}

    @classmethod
    def from_json(cls, raw: object) -> TurnNear:
        """Raises `ValueError` (or `ContactInvalid`) for a body of the wrong shape."""
        if not isinstance(raw, dict):
            raise ValueError("the body is not a JSON object")
        fields = {name: raw.get(name) for name in
                  ("id", "channel", "address", "lang", "link")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            raise ValueError("id, channel, address, lang and link are required strings")
        minutes = raw.get("minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 0 <= minutes < 1440:
            raise ValueError("minutes must be a whole number from 0 to 1439")
        channel, address = normalise_contact(fields["address"])
        if channel != fields["channel"]:
            raise ValueError("channel does not match the address")
        link = str(fields["link"])
        if len(link) > 2000 or not link.startswith(("https://", "http://")):
            raise ValueError("link must be an absolute http(s) URL")
        if len(str(fields["id"])) > 100:
            raise ValueError("id is too long")
        return cls(str(fields["id"]), channel, address, str(fields["lang"]), minutes, link)


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

    def __init__(self, secret_keys: Sequence[str], clock: Clock) -> None:
        super().__init__(_keys_oldest_first(secret_keys), salt=_TICKET_SALT,
                         signer=_TimestampSigner, signer_kwargs=_SIGNER_KWARGS)
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


class TicketCodec:
    """Signs tickets and checks their signature and age (room rules are the gate's)."""

    def __init__(self, secret_keys: Sequence[str], *, max_age_s: int,
                 clock: Clock = time.time) -> None:
        self.max_age_s = max_age_s
        self._serializer = _TicketSerializer(secret_keys, clock)

    def sign(self, ticket: Ticket) -> str:
        token: str = self._serializer.dumps([ticket.room, ticket.epoch, ticket.number,
                                             ticket.ticket_id, ticket.frontier_at_join,
                                             ticket.draw])
        return token

    def load(self, token: str) -> Ticket:
        """Raises `TicketExpired` or `TicketInvalid`."""
        if not token.isascii():
            # A token is URL-safe base64 and dots; bytes that are not UTF-8 arrive from
            # aiohttp as surrogates, which the signature check cannot even encode.
            raise TicketInvalid()
        try:
            raw, signed_at = self._serializer.loads(token, max_age=self.max_age_s,
                                                    return_timestamp=True)
        except SignatureExpired as exc:  # before BadSignature: it is a subclass of it
            raise TicketExpired() from exc
        except BadSignature as exc:
            raise TicketInvalid() from exc
        return _ticket_from_payload(raw, signed_at.timestamp())


class PassCodec:
    """Signs and checks admission passes; the protected application uses it to refuse
    everyone the gate did not admit."""

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
        if not token.isascii():
            raise PassInvalid()  # not a token at all (see TicketCodec.load)
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
