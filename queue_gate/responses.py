"""Small answers the gate's handlers share: who gets JSON, and where a visitor is sent."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import hdrs, web

from vaccine_queue.contract import QUEUE_WAIT_PATH

MAX_NEXT_LENGTH = 2000
NO_STORE = {"Cache-Control": "no-store"}


def is_api(request: web.Request) -> bool:
    """The gate's JSON API, and clients that ask for JSON rather than a page."""
    if request.path.startswith("/queue/api/"):
        return True
    accept = request.headers.get(hdrs.ACCEPT, "")
    return "application/json" in accept and "text/html" not in accept


def wants_html(request: web.Request) -> bool:
    """A browser on its way to the booking pages (for the proxy: everyone else is an app)."""
    accept = request.headers.get(hdrs.ACCEPT, "")
    return "text/html" in accept or (not accept and request.method in ("GET", "HEAD"))


def safe_next(raw: str | None) -> str:
    """Only a path on this site: no open redirect, and never back into the queue itself."""
    if (
        not raw
        or len(raw) > MAX_NEXT_LENGTH
        or not raw.startswith("/")
        or raw.startswith(("//", "/\\", "/queue/"))
        or any(ch in raw for ch in "\r\n\t\\")
    ):
        return "/"
    return raw


def wait_url(next_path: str) -> str:
    """The waiting page, coming back to `next_path` once admitted."""
    return f"{QUEUE_WAIT_PATH}?next={quote(next_path, safe='/')}"


def see_other(location: str) -> web.Response:
    """A 303 we can still add cookies to (aiohttp wants HTTPException raised, not returned)."""
    return web.Response(status=303, headers={"Location": location, **NO_STORE})
