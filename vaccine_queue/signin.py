"""Signing staff in to the pages made for them: a centre's desk (the day list and check-in)
and the operators' console. Both work the same way, so they share this:

- a token typed once starts a session: a signed cookie (HttpOnly, SameSite=Strict, only
  under the pages' prefix) naming a random session id, the operator and a fingerprint of
  their token, so that rotating a token (or removing the operator) ends their sessions;
- every form carries a CSRF token: the session id, signed with a salt of its own;
- `next` after signing in is a path under the prefix, never another site.

One serializer per purpose, rotatable secrets (newest first, all verify)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from vaccine_queue.pages import Problem

MAX_AGE_S = 12 * 3600  # one working day
MAX_FORM_FIELD = 2000  # characters kept of any form field


@dataclass(frozen=True, slots=True)
class SignedIn:
    sid: str
    operator: str


def serializer(secret_keys: Sequence[str], salt: str) -> URLSafeTimedSerializer:
    """Our secrets are listed newest first; itsdangerous signs with the last of its list and
    verifies with all."""
    return URLSafeTimedSerializer(list(reversed(secret_keys)), salt=salt)


def see_other(location: str) -> web.Response:
    """A 303 to `location` returned (not raised), so cookies set on it are sent."""
    return web.Response(status=303, headers={"Location": location})


async def read_form(request: web.Request, limit: int = MAX_FORM_FIELD) -> dict[str, str]:
    """A posted form's text fields, each cut to `limit` characters; 400 for a body that is
    not a form."""
    try:
        data = await request.post()
    except ValueError as exc:
        raise Problem("bad_request", 400) from exc
    return {name: value[:limit] for name, value in data.items()
            if isinstance(value, str)}


class SignIn:
    """Sessions of one set of staff pages under `prefix`.

    `operators` gives the current (name, token) pairs each time it is asked, so a token
    rotated in the settings ends the sessions it started."""

    def __init__(self, *, prefix: str, cookie: str, purpose: str, session_salt: str,
                 csrf_salt: str, secret_keys: Sequence[str],
                 operators: Callable[[], Sequence[tuple[str, str]]], secure: bool,
                 max_age_s: int = MAX_AGE_S) -> None:
        self.prefix = prefix
        self.cookie = cookie
        self.purpose = purpose
        self.operators = operators
        self.secure = secure
        self.max_age_s = max_age_s
        self.sessions = serializer(secret_keys, session_salt)
        self.csrf = serializer(secret_keys, csrf_salt)

    def fingerprint(self, token: str) -> str:
        return hashlib.sha256(f"{self.purpose}-session:{token}".encode()).hexdigest()[:32]

    def match(self, given: str) -> tuple[str, str] | None:
        """The operator whose token this is, every token compared in constant time; None
        for an empty or unknown one (no operators configured means nobody, never anyone)."""
        typed = given.strip().encode("utf-8", "surrogateescape")
        matched = [(name, token) for name, token in self.operators()
                   if token and hmac.compare_digest(typed, token.encode())]
        return matched[0] if typed and matched else None

    def start(self, response: web.StreamResponse, operator: str, token: str) -> None:
        value = self.sessions.dumps({"sid": secrets.token_urlsafe(18), "op": operator,
                                     "tok": self.fingerprint(token)})
        response.set_cookie(self.cookie, value, max_age=self.max_age_s, httponly=True,
                            samesite="Strict", secure=self.secure, path=self.prefix)

    def end(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.cookie, path=self.prefix)

    def read(self, request: web.Request) -> SignedIn | None:
        """The signed-in operator, or None (no cookie, a forged or expired one, or one
        signed before their token was rotated or they were removed)."""
        raw = request.cookies.get(self.cookie, "")
        if not raw:
            return None
        try:
            data = self.sessions.loads(raw, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired included: sign in again
            return None
        if not isinstance(data, dict):
            return None
        sid, operator, tok = data.get("sid"), data.get("op"), str(data.get("tok", ""))
        if not isinstance(sid, str) or not isinstance(operator, str):
            return None
        for name, token in self.operators():
            if token and name == operator and hmac.compare_digest(tok, self.fingerprint(token)):
                return SignedIn(sid, operator)
        return None

    def csrf_token(self, sid: str) -> str:
        return str(self.csrf.dumps(sid))

    def check_csrf(self, sid: str, token: object) -> None:
        if not isinstance(token, str) or not token:
            raise Problem("csrf_invalid", 400)
        try:
            signed = self.csrf.loads(token, max_age=self.max_age_s)
        except BadSignature as exc:  # SignatureExpired is one
            raise Problem("csrf_invalid", 400) from exc
        if not isinstance(signed, str) or not hmac.compare_digest(signed, sid):
            raise Problem("csrf_invalid", 400)

    def safe_next(self, raw: str) -> str:
        """Only a path of these pages: never another site (`//evil`) or another part."""
        if raw.startswith(f"{self.prefix}/") and not raw.startswith("//") and "\\" not in raw:
            return raw
        return f"{self.prefix}/"

    def login_url(self, request: web.Request) -> str:
        return f"{self.prefix}/login?next={quote(request.path_qs, safe='')}"
