"""Writing to the transactional outbox: a message is queued by the transaction of the change
that causes it (a code requested, a booking made, a waiting entry served), so a change never
commits without its message, nor a message without its change. `verification.Outbox`
delivers them."""

from __future__ import annotations

import secrets

from booking_backend.db import Connection


async def enqueue(conn: Connection, kind: str, channel: str, address: str, lang: str, now: int,
                  *, code: str | None = None, booking: str | None = None,
                  verification: str | None = None, mid: str | None = None) -> str:
    """Queue one message, due now; returns its id."""
    mid = mid or secrets.token_urlsafe(12)
    await conn.execute(
        "INSERT INTO outbox (id, kind, channel, address, lang, code, booking, verification,"
        " due, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        mid, kind, channel, address, lang, code, booking, verification, now)
    return mid
