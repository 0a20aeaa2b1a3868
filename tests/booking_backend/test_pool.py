"""The database pool is bounded and waits: a burst above its size is served a little later,
and only a pool that stays busy past its timeout answers 503 with Retry-After."""

from __future__ import annotations

import asyncio

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, MakeEnv


async def test_a_burst_above_the_pool_size_waits_instead_of_failing(make_env: MakeEnv) -> None:
    env = await make_env(database_pool_size=2, database_acquire_timeout=30.0)
    pairs = await env.add_pairs(30)
    results = await asyncio.gather(*(
        env.api("POST", "/api/v1/holds", f"b{i}", json={
            "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
            "second_slot": second.id})
        for i, (first, second) in enumerate(pairs)))
    assert [status for status, _ in results] == [201] * 30
    assert (await env.backend.counts())["held"] == 60


async def test_a_request_waits_for_a_busy_pool_up_to_its_timeout(make_env: MakeEnv) -> None:
    env = await make_env(database_pool_size=1, database_acquire_timeout=30.0)
    async with env.backend.db.connection():
        # The only connection is busy: the request waits for it ...
        request = asyncio.create_task(env.api("GET", "/api/v1/centres?postcode=38100"))
        done, _ = await asyncio.wait([request], timeout=0.3)
        assert not done
    # ... and is served once it is free again.
    status, body = await request
    assert status == 200 and body["centres"]


async def test_a_pool_busy_past_its_timeout_answers_503_with_retry_after(
    make_env: MakeEnv,
) -> None:
    env = await make_env(database_pool_size=1, database_acquire_timeout=0.2)
    async with env.backend.db.connection(), env.client.get("/api/v1/centres?postcode=38100",
                              headers=env.headers()) as resp:
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) > 0
        assert (await resp.json())["error"] == "store_unavailable"
    assert env.backend.registry.get_sample_value("booking_store_errors_total") == 1
    status, _ = await env.api("GET", "/api/v1/centres?postcode=38100")
    assert status == 200


async def test_a_statement_stuck_behind_a_lock_answers_503_not_forever(
    make_env: MakeEnv,
) -> None:
    """A statement waits for a lock at most the statement timeout: a stuck transaction
    elsewhere makes a 503 with Retry-After, never a hung request or a 500."""
    setup = await make_env()
    ((first, second),) = await setup.add_pairs(1)
    # A second process on the same database whose statements give up after 2 s.
    env = await make_env(catalogue=False, database_statement_timeout=2.0)
    async with setup.backend.db.connection() as conn, conn.transaction():
        await conn.execute("SELECT * FROM slots WHERE start_at = $1 FOR UPDATE", first.start)
        status, body = await env.api("POST", "/api/v1/holds", "stuck", json={
            "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
            "second_slot": second.id})
        assert (status, body["error"]) == (503, "store_unavailable")
    status, _ = await env.api("POST", "/api/v1/holds", "stuck", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
        "second_slot": second.id})
    assert status == 201
