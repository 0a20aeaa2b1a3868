"""Exact counts behind the dashboards: expired holds and codes counted once by whoever frees
them, slot units per centre, the outbox backlog, and the route label of every request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry

from booking_backend.inventory import Booking
from booking_backend.metrics import Metrics
from tests.booking_backend.conftest import (
    CENTRE,
    HOME_POSTCODE,
    OLD,
    OTHER_CENTRE,
    Env,
    MakeEnv,
    pair_slots,
)

PHONE = "+4915100000077"


async def scrape(env: Env) -> str:
    """What Prometheus reads; reading it also refreshes the values taken from Redis."""
    async with env.admin.get("/metrics") as response:
        assert response.status == 200
        return await response.text()


async def sample(env: Env, name: str, **labels: str) -> float | None:
    await scrape(env)
    return env.backend.registry.get_sample_value(name, labels)


async def hold(env: Env, ticket: str, pair: int = 0, centre: str = CENTRE) -> str:
    first, second = pair_slots(centre, pair)
    status, body = await env.api("POST", "/api/v1/holds", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
        "second_slot": second.id})
    assert status == 201, body
    return str(body["hold_id"])


async def expired_holds(env: Env) -> float | None:
    return await sample(env, "booking_holds_expired_total")


async def expired_codes(env: Env) -> float | None:
    return await sample(env, "booking_codes_expired_total")


# --- expired holds ----------------------------------------------------------------------------


async def test_a_hold_freed_by_the_next_hold_is_counted_once(env: Env) -> None:
    await env.add_pairs(2)
    assert await expired_holds(env) == 0
    await hold(env, "a", 0)
    env.clock.advance(env.settings.hold_seconds)
    await hold(env, "b", 1)  # the next hold finds the expired one and gives it back
    assert await expired_holds(env) == 1
    assert await env.backend.inventory.sweep() == 0  # nothing left for the sweeper
    await hold(env, "c", 0)
    assert await expired_holds(env) == 1


async def test_a_hold_freed_by_the_sweeper_is_counted_once(env: Env) -> None:
    await env.add_pairs(3)
    for i in range(3):
        await hold(env, f"v{i}", i)
    env.clock.advance(env.settings.hold_seconds)
    # Two sweepers at once (two backend processes): each hold is freed and counted once.
    assert sorted(await asyncio.gather(env.backend.inventory.sweep(),
                                       env.backend.inventory.sweep())) == [0, 3]
    assert await expired_holds(env) == 3
    await hold(env, "next", 0)
    assert await expired_holds(env) == 3


async def test_a_late_confirmation_frees_and_counts_the_hold(make_env: MakeEnv) -> None:
    env = await make_env(code_validity_seconds=3600)
    await env.add_pairs(1)
    hid = await hold(env, "a")
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/details", "a",
                              json={"name": "Lena Lang", "contact": PHONE})
    assert status == 202
    await env.deliver()
    env.clock.advance(env.settings.hold_seconds)
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a",
                                 json={"code": env.sender.last_code(PHONE)})
    assert (status, body["error"]) == (410, "hold_expired")
    assert await expired_holds(env) == 1
    assert await env.backend.inventory.sweep() == 0
    assert await expired_holds(env) == 1


async def test_released_and_replaced_holds_are_not_expiries(env: Env) -> None:
    await env.add_pairs(3)
    hid = await hold(env, "a", 0)
    await hold(env, "a", 1)  # replaces the first
    await hold(env, "b", 2)
    status, _ = await env.api("DELETE", f"/api/v1/holds/{hid}", "a")
    assert status == 200, status
    env.clock.advance(env.settings.hold_seconds - 1)
    assert await env.backend.inventory.sweep() == 0
    assert await expired_holds(env) == 0


async def test_every_process_reports_the_same_deployment_wide_count(env: Env) -> None:
    await env.add_pairs(1)
    await hold(env, "a")
    env.clock.advance(env.settings.hold_seconds)
    await env.backend.inventory.sweep()
    other = Metrics(CollectorRegistry())
    assert other.registry.get_sample_value("booking_holds_expired_total") is None  # unread
    other.observe(await env.backend.levels(), env.clock())
    assert other.registry.get_sample_value("booking_holds_expired_total") == 1
    assert await expired_holds(env) == 1
    assert "# TYPE booking_holds_expired_total counter" in await scrape(env)


# --- codes expired unused ---------------------------------------------------------------------


async def code_delivered(env: Env, ticket: str = "a", pair: int = 0) -> str:
    hid = await hold(env, ticket, pair)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/details", ticket,
                              json={"name": "Karl Kurz", "contact": PHONE})
    assert status == 202
    assert await env.deliver() == 1
    return hid


async def confirm(env: Env, hid: str, code: str, ticket: str = "a") -> int:
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/confirm", ticket,
                              json={"code": code})
    return status


async def test_a_code_nobody_enters_is_counted_by_the_sweeper_once(make_env: MakeEnv) -> None:
    env = await make_env(hold_seconds=3600)
    await env.add_pairs(1)
    await code_delivered(env)
    env.clock.advance(env.settings.code_validity_seconds - 1)
    assert await env.backend.verifier.expire_codes() == 0
    env.clock.advance(1)
    assert sorted(await asyncio.gather(env.backend.verifier.expire_codes(),
                                       env.backend.verifier.expire_codes())) == [0, 1]
    assert await env.backend.verifier.expire_codes() == 0
    assert await expired_codes(env) == 1


async def test_a_code_entered_too_late_is_counted_once(make_env: MakeEnv) -> None:
    env = await make_env(hold_seconds=3600)
    await env.add_pairs(1)
    hid = await code_delivered(env)
    code = env.sender.last_code(PHONE)
    env.clock.advance(env.settings.code_validity_seconds)
    assert await confirm(env, hid, code) == 410
    assert await confirm(env, hid, code) == 410  # a second try finds it expired again
    assert await env.backend.verifier.expire_codes() == 0  # already counted
    assert await expired_codes(env) == 1


async def test_a_resend_after_expiry_counts_the_old_code(make_env: MakeEnv) -> None:
    env = await make_env(hold_seconds=3600)
    await env.add_pairs(1)
    hid = await code_delivered(env)
    env.clock.advance(env.settings.code_resend_seconds)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/code", "a")
    assert status == 202  # replaced in time: not an expiry
    assert await env.deliver() == 1
    assert await expired_codes(env) == 0
    env.clock.advance(env.settings.code_validity_seconds)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/code", "a")
    assert status == 202  # the second code ran out unused
    assert await expired_codes(env) == 1
    env.clock.advance(env.settings.code_validity_seconds)  # the third was never delivered
    assert await env.backend.verifier.expire_codes() == 0
    assert await env.deliver() == 1
    assert await confirm(env, hid, env.sender.last_code(PHONE)) == 201
    env.clock.advance(env.settings.code_validity_seconds)
    assert await env.backend.verifier.expire_codes() == 0  # used: not expired
    assert await expired_codes(env) == 1


async def test_locked_and_undelivered_codes_are_not_expiries(make_env: MakeEnv) -> None:
    env = await make_env(hold_seconds=3600)
    await env.add_pairs(2)
    hid = await code_delivered(env)
    wrong = "111111" if env.sender.last_code(PHONE) != "111111" else "222222"
    for _ in range(env.settings.code_max_attempts):
        await confirm(env, hid, wrong)
    assert await confirm(env, hid, wrong) == 429
    other = await hold(env, "b", 1)
    status, _ = await env.api("POST", f"/api/v1/holds/{other}/details", "b",
                              json={"name": "Otto Ohne", "contact": "+4915100000078"})
    assert status == 202  # never delivered (no worker ran)
    env.clock.advance(env.settings.code_validity_seconds * 2)
    assert await env.backend.verifier.expire_codes() == 0
    async with env.admin.post("/admin/sweep",
                              headers={"Authorization": "Bearer test-admin-token"}) as resp:
        assert await resp.json() == {"holds_expired": 0, "codes_expired": 0}
    assert await expired_codes(env) == 0


# --- slot units by centre ---------------------------------------------------------------------


async def centre_units(env: Env, centre: str) -> dict[str, float | None]:
    await scrape(env)
    return {state: env.backend.registry.get_sample_value(
        "booking_centre_slot_units", {"centre": centre, "state": state})
        for state in ("free", "held", "booked")}


async def test_slot_units_by_centre_follow_holds_bookings_and_cancellations(env: Env) -> None:
    await env.add_pairs(3)
    await env.add_pairs(1, centre=OTHER_CENTRE)
    assert await centre_units(env, CENTRE) == {"free": 6, "held": 0, "booked": 0}
    assert await centre_units(env, OTHER_CENTRE) == {"free": 2, "held": 0, "booked": 0}
    booking = await env.book(pair_slots(CENTRE, 0), "a", contact="+4915100000001")
    await hold(env, "b", 1)
    assert await centre_units(env, CENTRE) == {"free": 2, "held": 2, "booked": 2}
    assert await centre_units(env, OTHER_CENTRE) == {"free": 2, "held": 0, "booked": 0}
    # A hold that moves to another centre's pair moves its units with it.
    await hold(env, "b", 0, OTHER_CENTRE)
    assert await centre_units(env, CENTRE) == {"free": 4, "held": 0, "booked": 2}
    assert await centre_units(env, OTHER_CENTRE) == {"free": 0, "held": 2, "booked": 0}
    outcome = await env.backend.inventory.cancel(await _booking(env, booking["booking_code"]))
    assert outcome.status == "ok"
    assert await centre_units(env, CENTRE) == {"free": 6, "held": 0, "booked": 0}
    # The per-centre units add up to the totals.
    text = await scrape(env)
    for state in ("free", "held", "booked"):
        total = env.backend.registry.get_sample_value("booking_slot_units", {"state": state})
        assert total == sum(
            v for c in (CENTRE, OTHER_CENTRE)
            if (v := env.backend.registry.get_sample_value(
                "booking_centre_slot_units", {"centre": c, "state": state})) is not None)
    assert 'booking_centre_slot_units{centre="braunschweig",state="free"} 6.0' in text


async def test_a_waiting_list_assignment_books_units_at_its_centre(env: Env) -> None:
    status, _ = await env.api("POST", "/api/v1/waitlist", "w", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "name": "Wanda Warte",
        "contact": "+4915100000099"})
    assert status == 201
    await env.add_pairs(1, share=1.0)
    assert await centre_units(env, CENTRE) == {"free": 0, "held": 0, "booked": 2}


async def _booking(env: Env, code: str) -> Booking:
    booking = await env.backend.inventory.booking(code)
    assert booking is not None
    return booking


# --- outbox backlog ---------------------------------------------------------------------------


async def test_the_outbox_backlog_and_its_age(env: Env) -> None:
    assert await sample(env, "booking_outbox_pending") == 0
    assert await sample(env, "booking_outbox_oldest_pending_seconds") == 0
    await env.add_pairs(2)
    hid = await hold(env, "a", 0)
    await env.api("POST", f"/api/v1/holds/{hid}/details", "a",
                  json={"name": "Karl Kurz", "contact": PHONE})
    env.clock.advance(30)  # the gateway stalls: nothing is delivered
    other = await hold(env, "b", 1)
    await env.api("POST", f"/api/v1/holds/{other}/details", "b",
                  json={"name": "Otto Ohne", "contact": "+4915100000078"})
    env.clock.advance(15)
    assert await sample(env, "booking_outbox_pending") == 2
    assert await sample(env, "booking_outbox_oldest_pending_seconds") == 45
    env.sender.failures = 1  # one attempt fails and is retried later: still pending
    assert await env.deliver() == 2
    assert await sample(env, "booking_outbox_pending") == 1
    assert await sample(env, "booking_outbox_oldest_pending_seconds") in (45, 15)
    env.clock.advance(2)
    assert await env.deliver() == 1
    assert await sample(env, "booking_outbox_pending") == 0
    assert await sample(env, "booking_outbox_oldest_pending_seconds") == 0


# --- requests by route ------------------------------------------------------------------------


async def test_requests_are_labelled_by_route_never_by_raw_path(env: Env) -> None:
    await env.add_pairs(1)
    hid = await hold(env, "a")
    status, _ = await env.api("GET", f"/api/v1/holds/{hid}", "a")
    assert status == 200
    status, _ = await env.api("GET", "/api/v1/no-such-thing", "a")
    assert status == 404
    text = await scrape(env)
    assert hid not in text and "no-such-thing" not in text
    get = env.backend.registry.get_sample_value
    assert get("booking_http_requests_total",
               {"surface": "api", "route": "/api/v1/holds/{hold_id}", "status": "2xx"}) == 1
    assert get("booking_http_requests_total",
               {"surface": "api", "route": "/api/v1/holds", "status": "2xx"}) == 1
    assert get("booking_http_requests_total",
               {"surface": "api", "route": "unmatched", "status": "4xx"}) == 1
    assert get("booking_http_request_duration_seconds_count",
               {"surface": "api", "route": "/api/v1/holds/{hold_id}"}) == 1


# --- load reaching the backend ----------------------------------------------------------------


async def in_flight(env: Env) -> str:
    """The in-flight gauge alone, as the launch benchmark probes it several times a second."""
    async with env.admin.get("/metrics",
                             params={"name[]": "booking_http_requests_in_flight"}) as response:
        assert response.status == 200
        return await response.text()


async def test_requests_in_flight_are_counted_until_answered(env: Env) -> None:
    await env.add_pairs(1)
    body_may_end = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        """A visitor on a bad connection: the request has started, its body is not in."""
        yield b'{"birth_date": "'
        await body_may_end.wait()
        yield OLD.encode() + b'", "postcode": "' + HOME_POSTCODE.encode() + b'"}'

    request = asyncio.create_task(env.api("POST", "/api/v1/offers", "a", data=slow_body(),
                                          headers={"Content-Type": "application/json"}))
    for _ in range(200):
        if "booking_http_requests_in_flight 1.0" in await in_flight(env):
            break
        await asyncio.sleep(0.01)
    text = await in_flight(env)
    assert "booking_http_requests_in_flight 1.0" in text
    # Only the metric asked for, and no Redis read for the others.
    assert "booking_slot_units" not in text and "booking_http_requests_total" not in text
    body_may_end.set()
    status, _ = await request
    assert status == 200
    assert "booking_http_requests_in_flight 0.0" in await in_flight(env)


async def test_a_filtered_scrape_of_a_redis_value_still_reads_redis(env: Env) -> None:
    await env.add_pairs(3)
    async with env.admin.get("/metrics", params={"name[]": "booking_slot_units"}) as response:
        text = await response.text()
    assert 'booking_slot_units{state="free"} 6.0' in text
    assert "booking_http_request" not in text
