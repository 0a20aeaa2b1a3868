"""Proof of work at the door: a room that wants it (`challenge_bits` > 0) numbers a new
visitor only after they show some work.

The gate hands out a signed challenge: a random prefix and a difficulty in bits. The visitor
finds a `nonce` such that SHA-256 of `prefix + nonce` (UTF-8) starts with that many zero
bits, and joins with the challenge's token and the nonce. Checking a solution is local: the
signature, the expiry and one hash, no Redis round trip. That a challenge is used once is
part of the join's own script (join-14.lua records the challenge's id with its expiry), so
it costs no round trip of its own either.

A browser without JavaScript gets a *waited* token instead: signed with a "not before" time
a fixed number of seconds ahead, which the waiting page's meta refresh brings back once that
time has come. It costs a person time, not their device's work; it is used once, too.

Each kind of token has its own serializer with its own salt, from the gate's list of secrets
(newest signs, all verify), like tickets and passes.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from vaccine_queue.contract import Clock

CHALLENGE_SALT = "queue-gate.challenge.v1"
WAITED_SALT = "queue-gate.waited.v1"
ALGORITHM = "sha256"
# How long a challenge (or a waited token, after its "not before") may be used.
CHALLENGE_TTL_S = 300
# Longest nonce accepted; the waiting page's are a dozen digits.
MAX_NONCE_LENGTH = 64
# Longest token read (ours are about 100 characters): bad input is refused before decoding.
MAX_TOKEN_LENGTH = 512
# The difficulty operators are advised to use (docs/benchmarks.md "Proof of work"): under
# 3 s at p95 on a phone-class browser, over 100 times fewer places for a bot's core.
RECOMMENDED_BITS = 18


class ChallengeRejected(Exception):
    """A solution that must not open the door; `code` names `err.<code>` in the
    catalogue. The visitor is given a fresh challenge."""

    code = "challenge_invalid"

    def __init__(self) -> None:
        super().__init__(self.code)


class ChallengeRequired(ChallengeRejected):
    code = "challenge_required"


class ChallengeExpired(ChallengeRejected):
    code = "challenge_expired"


class ChallengeFailed(ChallengeRejected):
    """The nonce does not give the hash the challenge asks for."""

    code = "challenge_failed"


class ChallengeUsed(ChallengeRejected):
    code = "challenge_used"


class ChallengeEarly(ChallengeRejected):
    """A waited token brought back before its time."""

    code = "challenge_early"


@dataclass(frozen=True, slots=True)
class Challenge:
    token: str
    prefix: str
    bits: int

    def as_json(self) -> dict[str, Any]:
        return {"token": self.token, "algorithm": ALGORITHM, "prefix": self.prefix,
                "bits": self.bits}


@dataclass(frozen=True, slots=True)
class Solved:
    """A checked solution: what the join script needs to accept it once."""

    challenge_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Waited:
    token: str
    not_before: int


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def meets(prefix: str, nonce: str, bits: int) -> bool:
    digest = hashlib.sha256((prefix + nonce).encode()).digest()
    return leading_zero_bits(digest) >= bits


def solve(prefix: str, bits: int) -> str:
    """The first decimal nonce that meets the challenge (for apps, tests and benchmarks:
    the hash state after the prefix is computed once, as a careful bot would)."""
    base = hashlib.sha256(prefix.encode())
    limit = 1 << (256 - bits)
    for n in itertools.count():
        nonce = str(n)
        h = base.copy()
        h.update(nonce.encode())
        if int.from_bytes(h.digest(), "big") < limit:
            return nonce
    raise AssertionError("unreachable")


class ChallengeIssuer:
    """Issues and checks one room's challenges and waited tokens."""

    def __init__(self, secret_keys: Sequence[str], room: str, *, wait_s: int,
                 clock: Clock = time.time, ttl_s: int = CHALLENGE_TTL_S) -> None:
        keys = list(reversed([key for key in secret_keys if key]))  # itsdangerous: oldest first
        self._challenges = URLSafeSerializer(keys, salt=CHALLENGE_SALT,
                                             signer_kwargs={"digest_method": hashlib.sha256})
        self._waited = URLSafeSerializer(keys, salt=WAITED_SALT,
                                         signer_kwargs={"digest_method": hashlib.sha256})
        self.room = room
        self.wait_s = wait_s
        self.ttl_s = ttl_s
        self._clock = clock

    def issue(self, bits: int) -> Challenge:
        prefix = secrets.token_urlsafe(16)
        expires_at = int(self._clock()) + self.ttl_s
        token: str = self._challenges.dumps([self.room, prefix, bits, expires_at])
        return Challenge(token, prefix, bits)

    def verify(self, token: object, nonce: object, *, bits: int) -> Solved:
        """Check a solution to a challenge of at least `bits`. Raises `ChallengeRejected`."""
        if not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_NONCE_LENGTH:
            raise ChallengeFailed()
        raw = self._load(self._challenges, token)
        if not (isinstance(raw, list) and len(raw) == 4 and raw[0] == self.room
                and isinstance(raw[1], str) and isinstance(raw[2], int)
                and isinstance(raw[3], int)):
            raise ChallengeRejected()
        _, prefix, given_bits, expires_at = raw
        if expires_at <= self._clock():
            raise ChallengeExpired()
        if given_bits < bits:
            raise ChallengeRejected()  # issued before the operator raised the difficulty
        if not meets(prefix, nonce, given_bits):
            raise ChallengeFailed()
        return Solved(prefix, expires_at)

    def issue_waited(self) -> Waited:
        not_before = int(self._clock()) + self.wait_s
        token: str = self._waited.dumps([self.room, secrets.token_urlsafe(16), not_before])
        return Waited(token, not_before)

    def verify_waited(self, token: object) -> Solved:
        """Check a waited token. Raises `ChallengeEarly` (with the token still good) or
        another `ChallengeRejected`."""
        raw = self._load(self._waited, token)
        if not (isinstance(raw, list) and len(raw) == 3 and raw[0] == self.room
                and isinstance(raw[1], str) and isinstance(raw[2], int)):
            raise ChallengeRejected()
        _, waited_id, not_before = raw
        now = self._clock()
        if now < not_before:
            raise ChallengeEarly()
        expires_at = not_before + self.ttl_s
        if expires_at <= now:
            raise ChallengeExpired()
        # Its own namespace in the script's record of used ids: "w." cannot start a prefix
        # (token_urlsafe has no dots).
        return Solved(f"w.{waited_id}", expires_at)

    def waited_not_before(self, token: str) -> int:
        """When a (checked) waited token may be used."""
        raw = self._load(self._waited, token)
        return int(raw[2])

    @staticmethod
    def _load(serializer: URLSafeSerializer, token: object) -> Any:
        if not isinstance(token, str) or not token.isascii() or \
                not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise ChallengeRejected()
        try:
            return serializer.loads(token)
        except BadSignature as exc:
            raise ChallengeRejected() from exc
