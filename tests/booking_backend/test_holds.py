"""Holds: both slots at once, expiry returns capacity (injected clock), one hold per visitor."""

from __future__ import annotations

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, Env, pair_slots


def hold_body(first: str, second: str) -> dict[str, str]:
    return {"birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first,
            "second_slot": second}


async def test_expired_hold_returns_capacity_lazily(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    status, held = await env.api("POST", "/api/v1/holds", "a", json=hold_body(first.id, second.id))
    assert status == 201
    assert held["expires_in_seconds"] == env.settings.hold_seconds
    status, body = await env.api("POST", "/api/v1/holds", "b", json=hold_body(first.id, second.id))
    assert (status, body["error"]) == (409, "pair_gone")

    env.clock.advance(env.settings.hold_seconds - 1)
    status, _ = await env.api("POST", "/api/v1/holds", "b", json=hold_body(first.id, second.id))
    assert status == 409  # one second before expiry the hold still stands

    env.clock.advance(1)
    status, body = await env.api("POST", "/api/v1/holds", "b", json=hold_body(first.id, second.id))
    assert status == 201, body
    status, old = await env.api("GET", f"/api/v1/holds/{held['hold_id']}", "a")
    assert old["status"] == "expired"
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"]) == (0, 2)


async def test_sweeper_returns_capacity_of_expired_holds(env: Env) -> None:
    pairs = await env.add_pairs(3)
    for i, (first, second) in enumerate(pairs):
        status, _ = await env.api("POST", "/api/v1/holds", f"v{i}",
                                  json=hold_body(first.id, second.id))
        assert status == 201
    assert (await env.backend.counts())["free"] == 0
    assert await env.backend.inventory.sweep() == 0
    env.clock.advance(env.settings.hold_seconds)
    assert await env.backend.inventory.sweep() == 3
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"]) == (6, 0)
    assert await env.backend.inventory.sweep() == 0  # each hold returns its units once


async def test_confirming_an_expired_hold_fails_and_frees_it(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    status, held = await env.api("POST", "/api/v1/holds", "a", json=hold_body(first.id, second.id))
    hid = held["hold_id"]
    await env.api("POST", f"/api/v1/holds/{hid}/details", "a",
                  json={"name": "Anna A", "contact": "+4915199999999"})
    await env.deliver()
    code = env.sender.last_code()
    env.clock.advance(env.settings.hold_seconds)
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a", json={"code": code})
    assert (status, body["error"]) == (410, "hold_expired")
    assert (await env.backend.counts())["free"] == 2


async def test_choosing_another_pair_gives_the_first_back(env: Env) -> None:
    (p1, p2) = await env.add_pairs(2)
    status, first = await env.api("POST", "/api/v1/holds", "a", json=hold_body(p1[0].id, p1[1].id))
    assert status == 201
    status, _ = await env.api("POST", "/api/v1/holds", "a", json=hold_body(p2[0].id, p2[1].id))
    assert status == 201
    status, old = await env.api("GET", f"/api/v1/holds/{first['hold_id']}", "a")
    assert old["status"] == "replaced"
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"]) == (2, 2)


async def test_a_gone_pair_keeps_the_previous_hold(env: Env) -> None:
    (p1, p2) = await env.add_pairs(2)
    await env.api("POST", "/api/v1/holds", "other", json=hold_body(p2[0].id, p2[1].id))
    status, mine = await env.api("POST", "/api/v1/holds", "a", json=hold_body(p1[0].id, p1[1].id))
    assert status == 201
    status, _ = await env.api("POST", "/api/v1/holds", "a", json=hold_body(p2[0].id, p2[1].id))
    assert status == 409
    status, kept = await env.api("GET", f"/api/v1/holds/{mine['hold_id']}", "a")
    assert kept["status"] == "held"
    counts = await env.backend.counts()
    assert (counts["free"], counts["held"]) == (0, 4)


async def test_pairs_outside_the_interval_or_across_centres_are_refused(env: Env) -> None:
    await env.add_pairs(1)
    first, _ = pair_slots("braunschweig", 0)
    too_soon = first.id.replace(str(first.start), str(first.start + 86400))
    status, body = await env.api("POST", "/api/v1/holds", "a", json=hold_body(first.id, too_soon))
    assert (status, body["error"]) == (422, "pair_invalid")
    other = pair_slots("wolfsburg", 0)[1]
    status, body = await env.api("POST", "/api/v1/holds", "a", json=hold_body(first.id, other.id))
    assert (status, body["error"]) == (422, "pair_invalid")


async def test_someone_elses_hold_is_invisible(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    _, held = await env.api("POST", "/api/v1/holds", "a", json=hold_body(first.id, second.id))
    status, body = await env.api("GET", f"/api/v1/holds/{held['hold_id']}", "b")
    assert (status, body["error"]) == (404, "hold_missing")
    status, body = await env.api("DELETE", f"/api/v1/holds/{held['hold_id']}", "b")
    assert status == 404
    status, body = await env.api("DELETE", f"/api/v1/holds/{held['hold_id']}", "a")
    assert (status, body["released"]) == (200, True)
    assert (await env.backend.counts())["free"] == 2
