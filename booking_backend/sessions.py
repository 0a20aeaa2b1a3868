"""The citizen's browser session (state between pages) and CSRF tokens bound to it.

The session id is a random cookie; its data lives in Redis with a time limit. Every form
carries a CSRF token: the session id signed with its own salt, so a page from another site
cannot post into someone's booking.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aiohttp import web
from itsdangerous import BadSignature, SignatureExpired

from booking_backend import keys
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
    store = request.app[keys.store_key]
    raw = request.cookies.get(SESSION_COOKIE, "")
    session: Session | None = None
    if raw and _valid_sid(raw):
        data = await store.hgetall(store.keys.session(raw))
        if data:
            session = Session(raw, data)
    if session is None:
        session = Session(secrets.token_urlsafe(24), {"created": "1"}, new=True, dirty=True)
    request[_session_key] = session
    return session


async def save(request: web.Request, response: web.StreamResponse) -> None:
    """Write the session back (if changed) and (re)set its cookie."""
    session = request.get(_session_key)
    if session is None:
        return
    store = request.app[keys.store_key]
    settings = request.app[keys.settings_key]
    # Deleted keys must disappear in Redis too, so the whole hash is rewritten when dirty.
    # Race: two tabs of one session writing at once: the last write wins. Nothing that
    # matters lives only here (holds, codes and bookings are checked in Redis scripts).
    if session.dirty:
        key = store.keys.session(session.sid)
        async with store.guard():
            pipe = store.redis.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=dict(session.data) or {"created": "1"})
            pipe.expire(key, settings.session_seconds)
            await pipe.execute()
    else:
        await store.expire(store.keys.session(session.sid), settings.session_seconds)
    response.set_cookie(
        SESSION_COOKIE, session.sid, max_age=settings.session_seconds, httponly=True,
        samesite="Lax", secure=settings.cookie_secure, path="/",
    )


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
