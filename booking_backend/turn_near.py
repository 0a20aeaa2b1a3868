"""The queue gate's "your turn is near" messages (issue 16): the gate asks, on this
service's private admin port with a token of its own (`BOOKING_NOTIFY_TOKEN`), and the
message goes into the outbox like a code, so delivery, retries and the demo inbox work
alike. The request's format is the contract's (`vaccine_queue.contract.TurnNear`).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from booking_backend import keys
from booking_backend.db import Connection
from booking_backend.identity import Contact
from vaccine_queue.contract import TURN_NEAR_KIND, TURN_NEAR_PATH, ContactInvalid, TurnNear
from vaccine_queue.i18n import DEFAULT_LANGUAGE, LANGUAGES

log = logging.getLogger(__name__)

# Outbox ids of turn messages: the gate's id, prefixed so no other message can share it.
ID_PREFIX = "turn:"


def authorised(request: web.Request) -> bool:
    """Whether the request carries the notify token (none configured: nobody is)."""
    token = request.app[keys.settings_key].notify_token
    sent = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return bool(token) and hmac.compare_digest(sent, f"Bearer {token}".encode())


async def queue_message(conn: Connection, turn: TurnNear, now: int) -> bool:
    """Queue the message once per id; False when it was queued before (a repeated ask)."""
    lang = turn.lang if turn.lang in LANGUAGES else DEFAULT_LANGUAGE
    # Race: two gate processes asking at once for one visitor: the primary key keeps one.
    inserted = await conn.fetchval(
        "INSERT INTO outbox (id, kind, channel, address, lang, link, minutes, due, created)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING"
        " RETURNING true",
        ID_PREFIX + turn.id, TURN_NEAR_KIND, turn.channel, turn.address, lang, turn.link,
        turn.minutes, now)
    return bool(inserted)


async def turn_near(request: web.Request) -> web.Response:
    """`POST /internal/turn-near`: queue a visitor's turn message; 202 (also for an id
    queued before), 400 for a body that is not a `TurnNear`, 401 without the token."""
    if not authorised(request):
        response = web.json_response(
            {"error": "unauthorized", "message": "A valid notify bearer token is required."},
            status=401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="booking-notify"'
        return response
    try:
        turn = TurnNear.from_json(await request.json())
    except ContactInvalid as exc:
        return web.json_response({"error": exc.code, "message": "The contact is not usable."},
                                 status=400)
    except (ValueError, UnicodeDecodeError) as exc:
        return web.json_response({"error": "invalid", "message": str(exc)[:200]}, status=400)
    backend = request.app[keys.backend_key]
    now = int(backend.clock())

    async def work(conn: Connection) -> bool:
        return await queue_message(conn, turn, now)

    queued = await backend.db.transaction(work)
    if queued:
        backend.outbox.wakeup()
        log.info("turn message queued for %s", Contact(turn.channel, turn.address).masked)
    return web.json_response({"queued": queued}, status=202)


def setup_routes(app: web.Application) -> None:
    app.router.add_post(TURN_NEAR_PATH, turn_near)
