"""Codes: validity runs from delivery, attempts are limited, resends are rate-limited, the
outbox retries and the webhook sender posts JSON."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pytest_aiohttp import AiohttpServer

from booking_backend.identity import Contact
from booking_backend.verification import Message, WebhookSender
from tests.booking_backend.conftest import HOME_POSTCODE, OLD, Env, MakeEnv

PHONE = "+4915100000042"


async def hold_with_details(env: Env, ticket: str = "a") -> str:
    ((first, second),) = await env.add_pairs(1)
    status, hold = await env.api("POST", "/api/v1/holds", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
        "second_slot": second.id})
    assert status == 201
    hid: str = hold["hold_id"]
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/details", ticket,
                              json={"name": "Karl Kurz", "contact": PHONE})
    assert status == 202
    return hid


async def confirm(env: Env, hid: str, code: str) -> tuple[int, Any]:
    return await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a", json={"code": code})


async def test_code_is_valid_from_delivery_not_from_request(make_env: MakeEnv) -> None:
    env = await make_env(hold_seconds=4 * 3600)
    hid = await hold_with_details(env)
    env.sender.gate = asyncio.Event()
    delivery = asyncio.create_task(env.deliver())  # the SMS gateway is backed up...
    await asyncio.sleep(0)
    env.clock.advance(2 * 3600)  # ...for two hours, far beyond the code's validity
    status, body = await confirm(env, hid, "000000")
    assert (status, body["error"]) == (409, "code_not_delivered")
    env.sender.gate.set()
    assert await delivery == 1
    code = env.sender.last_code(PHONE)
    env.clock.advance(env.settings.code_validity_seconds - 1)
    status, booking = await confirm(env, hid, code)
    assert status == 201, booking


async def test_the_right_code_counts_before_the_gateway_answers(make_env: MakeEnv) -> None:
    """The SMS is on the phone, the gateway's answer is still on its way back: a quick
    person's right code books, and the late answer does not revive the code."""
    env = await make_env(hold_seconds=3600)
    hid = await hold_with_details(env)
    env.sender.reply = asyncio.Event()
    delivery = asyncio.create_task(env.deliver())
    await env.sender.sent.wait()
    code = env.sender.last_code(PHONE)
    status, booking = await confirm(env, hid, code)
    assert status == 201, booking
    env.sender.reply.set()
    assert await delivery == 1
    env.clock.advance(env.settings.code_validity_seconds + 1)
    assert await env.backend.verifier.expire_codes() == 0  # used, not expired


async def test_guesses_before_delivery_count_as_attempts(make_env: MakeEnv) -> None:
    env = await make_env(hold_seconds=3600)
    hid = await hold_with_details(env)
    env.sender.gate = asyncio.Event()
    delivery = asyncio.create_task(env.deliver())  # nothing reaches the phone yet
    await asyncio.sleep(0)
    answers = [await confirm(env, hid, f"{n:06d}") for n in range(1, 6)]
    assert [(s, b["error"]) for s, b in answers[:4]] == [(409, "code_not_delivered")] * 4
    assert answers[4][0] == 429  # the fifth guess locks the code, as after delivery
    env.sender.gate.set()
    await delivery
    status, body = await confirm(env, hid, env.sender.last_code(PHONE))
    assert status == 429, body


async def test_code_expires_after_validity_from_delivery(make_env: MakeEnv) -> None:
    env = await make_env(hold_seconds=3600)
    hid = await hold_with_details(env)
    await env.deliver()
    code = env.sender.last_code(PHONE)
    env.clock.advance(env.settings.code_validity_seconds)
    status, body = await confirm(env, hid, code)
    assert (status, body["error"]) == (410, "code_expired")


async def test_wrong_attempts_are_limited(env: Env) -> None:
    hid = await hold_with_details(env)
    await env.deliver()
    code = env.sender.last_code(PHONE)
    wrong = "111111" if code != "111111" else "222222"
    for left in range(env.settings.code_max_attempts - 1, 0, -1):
        status, body = await confirm(env, hid, wrong)
        assert (status, body["error"], body["attempts_left"]) == (422, "code_wrong", left)
    status, body = await confirm(env, hid, wrong)
    assert (status, body["error"]) == (429, "code_locked")
    status, body = await confirm(env, hid, code)  # even the right code is refused now
    assert (status, body["error"]) == (429, "code_locked")


async def test_resend_is_rate_limited_and_replaces_the_code(env: Env) -> None:
    hid = await hold_with_details(env)
    await env.deliver()
    old_code = env.sender.last_code(PHONE)
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/code", "a")
    assert (status, body["error"]) == (429, "code_wait")
    env.clock.advance(env.settings.code_resend_seconds)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/code", "a")
    assert status == 202
    await env.deliver()
    new_code = env.sender.last_code(PHONE)
    if new_code != old_code:
        status, body = await confirm(env, hid, old_code)
        assert (status, body["error"]) == (422, "code_wrong")
    status, _ = await confirm(env, hid, new_code)
    assert status == 201


async def test_outbox_retries_until_delivered(env: Env) -> None:
    hid = await hold_with_details(env)
    env.sender.failures = 2
    assert await env.deliver() == 1
    assert await env.deliver() == 0  # backing off: not due yet
    env.clock.advance(2)
    assert await env.deliver() == 1
    env.clock.advance(4)
    assert await env.deliver() == 1
    code = env.sender.last_code(PHONE)
    status, _ = await confirm(env, hid, code)
    assert status == 201
    value = env.backend.metrics.registry.get_sample_value(
        "booking_outbox_deliveries_total", {"sender": "recording", "outcome": "retry"})
    assert value == 2


async def test_outbox_gives_up_and_says_so(make_env: MakeEnv) -> None:
    env = await make_env(outbox_max_attempts=2)
    hid = await hold_with_details(env)
    env.sender.failures = 5
    await env.deliver()
    env.clock.advance(60)
    await env.deliver()
    status, body = await confirm(env, hid, "123456")
    assert (status, body["error"]) == (502, "code_failed")


async def test_background_worker_delivers(make_env: MakeEnv) -> None:
    env = await make_env(outbox_worker=True)
    await hold_with_details(env)
    # Woken by the new message, the worker delivers it; the generous limit only stops a hang.
    await asyncio.wait_for(env.sender.sent.wait(), 30)
    assert env.sender.messages[0].contact.address == PHONE


async def test_webhook_sender_posts_json(aiohttp_server: AiohttpServer) -> None:
    received: list[Any] = []

    async def gateway(request: web.Request) -> web.Response:
        received.append((request.headers.get("Authorization"), await request.json()))
        return web.json_response({"ok": True}, status=202 if len(received) == 1 else 500)

    app = web.Application()
    app.router.add_post("/sms", gateway)
    server = await aiohttp_server(app)
    sender = WebhookSender(str(server.make_url("/sms")), "gw-token")
    await sender.open()
    try:
        message = Message("m1", "code", Contact("sms", PHONE), "de", "Ihr Code: 123456")
        await sender.send(message)
        from booking_backend.verification import DeliveryFailed

        try:
            await sender.send(message)
        except DeliveryFailed:
            pass
        else:
            raise AssertionError("a 500 from the gateway must fail the delivery")
    finally:
        await sender.close()
    auth, payload = received[0]
    assert auth == "Bearer gw-token"
    assert payload == {"id": "m1", "channel": "sms", "to": PHONE, "text": "Ihr Code: 123456",
                       "kind": "code", "lang": "de"}
