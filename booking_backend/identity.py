"""Normalising people and contacts, and the keyed hash that stands for a person.

One person holds at most one active booking. The person is recognised by their normalised
name and birth date: a second phone number or an e-mail address does not make a new person.
The database's unique index holds an HMAC of that (keyed with BOOKING_IDENTITY_KEY), never
the raw identity; an invitation letter, used once, is an HMAC of its code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

from booking_backend.eligibility import InvalidInput
from vaccine_queue.contract import ContactInvalid, normalise_contact

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: easy to read out on the phone


@dataclass(frozen=True, slots=True)
class Contact:
    channel: str  # "sms" | "email"
    address: str  # normalised: +4915112345678 or name@example.org

    @property
    def masked(self) -> str:
        """Safe to log and to show: `+49151*****678`, `n***@example.org`."""
        if self.channel == "email":
            local, _, domain = self.address.partition("@")
            return f"{local[:1]}***@{domain}"
        return self.address[:6] + "*" * max(len(self.address) - 9, 3) + self.address[-3:]


def normalise_name(raw: object, field: str = "name") -> str:
    if not isinstance(raw, str):
        raise InvalidInput(field, "name_missing")
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise InvalidInput(field, "name_missing")
    if len(text) > 120 or any(unicodedata.category(ch).startswith("C") for ch in text):
        raise InvalidInput(field, "name_invalid")
    return " ".join(text.split())


def name_key(name: str) -> str:
    """Case, accents, punctuation and spacing do not make a different person."""
    folded = unicodedata.normalize("NFKD", name.casefold().replace("ß", "ss"))
    letters = "".join(ch for ch in folded if ch.isalnum() or ch.isspace())
    return " ".join(letters.split())


def parse_contact(raw: object, field: str = "contact") -> Contact:
    """A German or international phone number (SMS) or an e-mail address, by the
    contract's rule (the gate checks contacts for its turn messages with it too)."""
    try:
        channel, address = normalise_contact(raw)
    except ContactInvalid as exc:
        raise InvalidInput(field, exc.code) from None
    return Contact(channel, address)


class IdentityHasher:
    """HMAC-SHA256 of a normalised identity, with a key of its own (not the rotating ones)."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _digest(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def person(self, name: str, birth: str) -> str:
        """Contact details are left out on purpose: they do not make a new person."""
        return self._digest(f"person|{name_key(name)}|{birth}")

    def invitation(self, code: str) -> str:
        return self._digest(f"invitation|{normalise_code(code)}")

    def code(self, subject: str, code: str) -> str:
        """The stored form of a verification code, bound to what it unlocks."""
        return self._digest(f"code|{subject}|{code}")


def normalise_code(raw: str) -> str:
    return re.sub(r"[\s\-]", "", raw).upper()


def new_code(groups: int = 2, size: int = 4) -> str:
    """`K7QM-3XZA`: readable, unambiguous, 40 bits per 8 characters."""
    return "-".join(
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(size)) for _ in range(groups)
    )


def is_code(raw: object, groups: int = 2, size: int = 4) -> bool:
    if not isinstance(raw, str):
        return False
    value = normalise_code(raw)
    return len(value) == groups * size and all(ch in _CODE_ALPHABET for ch in value)


def format_code(raw: str, size: int = 4) -> str:
    value = normalise_code(raw)
    return "-".join(value[i : i + size] for i in range(0, len(value), size))


def new_digits(length: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))
