"""The citizen's browser session (state between pages) and CSRF tokens bound to it.

The session id is a random cookie; its data lives in the database with a time limit. Every form
carries a CSRF token: the session id signed with its own salt, so a page from another site
cannot post into someone's booking.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from aiohttp import web
from itsdangerous import BadSignature, SignatureExpired

from booking_backend import keys
from booking_backend.db import Database
from vaccine_queue.pages import Problem

SESSION_COOKIE = "bk_session"
CSRF_FIELD = "csrf_token"
_session_key: web.RequestKey[Session] = web.RequestKey("session")


@dataclass
class Session:
    sid: str
    data: dict[str, str] = field(default_factory=dict)
    new: bool = False
    dirty: bool = False

    def get(self, name: str) -> str:
        return self.data.get(name, "")

    def set(self, **values: str) -> None:
        self.data.update(values)
        self.dirty = True

    def drop(self, *names: str) -> None:
        for name in names:
            if name in self.data:
                del self.data[name]
                self.dirty = True


def _valid_sid(raw: str) -> bool:
    return 20 <= len(raw) <= 64 and all(ch.isalnum() or ch in "-_" for ch in raw)


async def load(request: web.Request) -> Session:
    """This request's session (created when the browser has none or an unknown one)."""
    if _session_key in request:
        return request[_session_key]
    backend = request.app[keys.backend_key]
    raw = request.cookies.get(SESSION_COOKIE, "")
    session: Session | None = None
    if raw and _valid_sid(raw):
        document = await backend.db.fetchval(
            "SELECT data FROM sessions WHERE id = $1 AND expires > $2", raw,
            int(backend.clock()))
        if document is not None:
            session = Session(raw, json.loads(document))
    if session is None:
        session = Session(secrets.token_urlsafe(24), {"created": "1"}, new=True, dirty=True)
    request[_session_key] = session
    return session


async def save(request: web.Request, response: web.StreamResponse) -> None:
    """Write the session back (if changed, else only its new time limit) and (re)set its
    cookie."""
    session = request.get(_session_key)
    if session is None:
        return
    backend = request.app[keys.backend_key]
    settings = request.app[keys.settings_key]
    expires = int(backend.clock()) + settings.session_seconds
    # Race: two tabs of one session writing at once: the last write wins. Nothing that
    # matters lives only here (holds, codes and bookings are checked in their own rows).
    if session.dirty:
        await backend.db.execute(
            "INSERT INTO sessions (id, data, expires) VALUES ($1, $2::text::jsonb, $3)"
            " ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expires = EXCLUDED.expires",
            session.sid, json.dumps(session.data or {"created": "1"}), expires)
    else:
        await backend.db.execute("UPDATE sessions SET expires = $2 WHERE id = $1",
                                 session.sid, expires)
    response.set_cookie(
        SESSION_COOKIE, session.sid, max_age=settings.session_seconds, httponly=True,
        samesite="Lax", secure=settings.cookie_secure, path="/",
    )


async def forget_expired(db: Database, now: int) -> None:
    """Sessions and confirmation keys past their time limit leave (the sweeper calls this)."""
    await db.execute("DELETE FROM sessions WHERE expires <= $1", now)
    await db.execute("DELETE FROM idempotency_keys WHERE expires <= $1", now)


def csrf_token(request: web.Request, session: Session) -> str:
    token: str = request.app[keys.csrf_key].dumps(session.sid)
    return token


def check_csrf(request: web.Request, session: Session, token: object) -> None:
    """Refuse a form whose token is missing, forged, too old or from another session."""
    settings = request.app[keys.settings_key]
    if not isinstance(token, str) or not token or session.new:
        raise Problem("csrf_invalid", 400)
    try:
        sid = request.app[keys.csrf_key].loads(token, max_age=settings.session_seconds)
    except SignatureExpired as exc:  # before BadSignature: it is a subclass of it
        raise Problem("csrf_invalid", 400) from exc
    except BadSignature as exc:
        raise Problem("csrf_invalid", 400) from exc
    if not isinstance(sid, str) or not secrets.compare_digest(sid, session.sid):
        raise Problem("csrf_invalid", 400)
