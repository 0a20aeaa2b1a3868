"""Every booking step runs, down each of its paths, and the books balance afterwards.

One walk through the product's steps (holds, codes, confirmations, cancellations, the
waiting list, releases and sweeps); then every slot's held and booked units must be exactly
what its live holds and active bookings say, every served waiting entry must own exactly one
booking, and no person may hold two active bookings.
"""

from __future__ import annotations

import asyncpg
import pytest

from booking_backend.db import Database
from tests.booking_backend.conftest import (
    CENTRE,
    HOME_POSTCODE,
    OLD,
    OTHER_CENTRE,
    Env,
    pair_slots,
)


async def hold(env: Env, ticket: str, first: str, second: str) -> tuple[int, str]:
    status, body = await env.api("POST", "/api/v1/holds", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first,
        "second_slot": second})
    return status, str(body.get("hold_id", ""))


async def details(env: Env, hid: str, ticket: str, name: str, contact: str) -> None:
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/details", ticket,
                                 json={"name": name, "contact": contact})
    assert status == 202, body


async def confirm(env: Env, hid: str, ticket: str, code: str) -> tuple[int, dict[str, str]]:
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/confirm", ticket,
                                 json={"code": code})
    return status, body


async def join(env: Env, ticket: str, name: str, contact: str) -> int:
    status, body = await env.api("POST", "/api/v1/waitlist", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "name": name, "contact": contact})
    assert status in (200, 201), body
    return int(body["position"])


async def walk_every_path(env: Env) -> None:
    """Holds, codes, confirmations, cancellations, the waiting list and the sweeps."""
    pairs = await env.add_pairs(4)
    catalogue = await env.backend.service.catalogue()
    offers = await env.backend.inventory.offers([catalogue.centres[CENTRE]])
    assert [(o.first, o.second) for o in offers][:1] == [pairs[0]]
    # Waiting: joining twice keeps one place.
    assert await join(env, "w0", "Wanda Warte", "+4915100000090") == 1
    assert await join(env, "w0", "Wanda Warte", "+4915100000090") == 1

    # Holds: ok, previous (a second pair for the same visitor), gone, invalid, release.
    status, first_hid = await hold(env, "a", pairs[0][0].id, pairs[0][1].id)
    assert status == 201
    status, hid = await hold(env, "a", pairs[1][0].id, pairs[1][1].id)
    assert status == 201
    assert (await hold(env, "b", pairs[1][0].id, pairs[1][1].id))[0] == 409
    assert (await hold(env, "b", pairs[0][0].id, pairs[1][0].id))[0] == 422
    status, body = await env.api("DELETE", f"/api/v1/holds/{hid}", "a")
    assert (status, body["released"]) == (200, True)
    assert await env.backend.inventory.release(first_hid, "t:a") is False

    # A code: sent, sent again (replacing the first), too early for a third; one failed
    # delivery retried; a wrong guess, then the right code books, twice the same booking.
    status, hid = await hold(env, "c", pairs[2][0].id, pairs[2][1].id)
    await details(env, hid, "c", "Carla Code", "+4915100000091")
    env.clock.advance(env.settings.code_resend_seconds)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/code", "c")
    assert status in (200, 202)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/code", "c")
    assert status == 429
    env.sender.failures = 1
    assert await env.deliver() == 1
    env.clock.advance(2)
    assert await env.deliver() == 1
    assert (await confirm(env, hid, "c", "000000"))[0] == 422
    code = env.sender.last_code("+4915100000091")
    status, booking = await confirm(env, hid, "c", code)
    assert status == 201, booking
    assert (await confirm(env, hid, "c", code))[0] == 200
    await details_after_booking(env, hid)

    # Someone waiting books directly: the booking step takes them off the list.
    assert await join(env, "w1", "Willi Warte", "+4915100000092") == 2
    status, hid = await hold(env, "w1", pairs[3][0].id, pairs[3][1].id)
    await details(env, hid, "w1", "Willi Warte", "+4915100000092")
    await env.deliver()
    status, body = await confirm(env, hid, "w1", env.sender.last_code("+4915100000092"))
    assert status == 201, body
    assert (await env.backend.counts())["waiting"] == 1

    # Cancelled: the pair goes to the first waiting person; a second cancel does nothing.
    cancelled = await env.backend.inventory.booking(booking["booking_code"])
    assert cancelled is not None
    outcome = await env.backend.inventory.cancel(cancelled)
    assert outcome.status == "ok" and len(outcome.extra) == 1
    assert (await env.backend.inventory.cancel(cancelled)).status == "not_active"

    # New slots with a share for the waiting list, which is empty now; then one who waits.
    assert await join(env, "w2", "Wim Warte", "+4915100000093") == 1
    outcome = await env.backend.inventory.release_slots(
        catalogue.centres[CENTRE], [(pair_slots(CENTRE, 5)[0], 1), (pair_slots(CENTRE, 5)[1], 1)],
        share=1.0)
    assert (outcome.value, len(outcome.extra)) == ("2", 1)

    # Expiry: a late confirmation frees its hold, the next hold sweeps the others.
    other = await env.add_pairs(3, centre=OTHER_CENTRE)
    status, hid = await hold(env, "e", other[0][0].id, other[0][1].id)
    await details(env, hid, "e", "Emil Eile", "+4915100000094")
    await env.deliver()
    assert (await hold(env, "f", other[1][0].id, other[1][1].id))[0] == 201
    env.clock.advance(env.settings.hold_seconds)
    status, body = await confirm(env, hid, "e", env.sender.last_code("+4915100000094"))
    assert (status, body["error"]) == (410, "hold_expired")
    assert (await hold(env, "g", other[2][0].id, other[2][1].id))[0] == 201
    assert (await env.backend.counts())["held"] == 2  # only g's pair
    env.clock.advance(env.settings.code_validity_seconds)
    assert await env.backend.verifier.expire_codes() == 1  # e's code, never used


async def details_after_booking(env: Env, hid: str) -> None:
    outcome = await env.backend.inventory.attach_person(hid, "t:c", "x", {"name": "X"})
    assert outcome.status == "confirmed" and outcome.value


async def audit(db: Database) -> None:
    """The units the slots count are exactly the units the holds and bookings name."""
    unbalanced = await db.fetch(
        "WITH named AS ("
        " SELECT centre, start_at, count(*) FILTER (WHERE kind = 'held') AS held,"
        "  count(*) FILTER (WHERE kind = 'booked') AS booked FROM ("
        "   SELECT centre, first_start AS start_at, 'held' AS kind FROM holds"
        "    WHERE status = 'held'"
        "   UNION ALL SELECT centre, second_start, 'held' FROM holds WHERE status = 'held'"
        "   UNION ALL SELECT centre, first_start, 'booked' FROM bookings"
        "    WHERE status = 'active'"
        "   UNION ALL SELECT centre, second_start, 'booked' FROM bookings"
        "    WHERE status = 'active') u GROUP BY centre, start_at)"
        " SELECT s.* FROM slots s LEFT JOIN named n USING (centre, start_at)"
        " WHERE s.held <> coalesce(n.held, 0) OR s.booked <> coalesce(n.booked, 0)"
        "  OR s.held + s.booked > s.capacity")
    assert unbalanced == []
    served = await db.fetch(
        "SELECT w.id FROM waitlist w LEFT JOIN bookings b ON b.code = w.booking"
        " WHERE w.status = 'assigned' AND (b.code IS NULL OR b.identity <> w.identity)")
    assert served == []
    twice = await db.fetch(
        "SELECT identity FROM bookings WHERE status = 'active' GROUP BY identity"
        " HAVING count(*) > 1")
    assert twice == []


async def test_every_path_keeps_the_books_balanced(env: Env) -> None:
    await walk_every_path(env)
    await audit(env.backend.db)
    levels = await env.backend.levels()
    assert levels.counts["holds_expired"] == 2  # e's (confirmed too late) and f's
    assert levels.counts["codes_expired"] == 1


async def test_no_statement_can_oversell_a_slot(env: Env) -> None:
    """The rule is the schema's own: even a statement that skips the conditional UPDATE
    cannot take a unit that is not there."""
    ((first, _),) = await env.add_pairs(1)
    with pytest.raises(asyncpg.CheckViolationError, match="slots_never_oversold"):
        await env.backend.db.execute(
            "UPDATE slots SET booked = booked + 2 WHERE centre = $1 AND start_at = $2",
            CENTRE, first.start)


async def test_ended_holds_forget_name_and_contact(env: Env) -> None:
    await walk_every_path(env)
    env.clock.advance(3601)
    assert await env.backend.inventory.forget_ended() > 0
    assert await env.backend.db.fetchval(
        "SELECT count(*) FROM holds WHERE status <> 'held' AND name IS NOT NULL") == 0
    # The bookings keep theirs: a person must be reachable about their appointment.
    assert await env.backend.db.fetchval(
        "SELECT count(*) FROM bookings WHERE name IS NULL OR address IS NULL") == 0
