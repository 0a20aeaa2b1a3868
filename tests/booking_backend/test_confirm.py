"""Confirmation: retries book once, one person one booking, the gate's end-of-session header."""

from __future__ import annotations

import asyncio

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, Env


async def start(env: Env, first: str, second: str, ticket: str, contact: str,
                name: str = "Erika Muster") -> tuple[str, str]:
    status, hold = await env.api("POST", "/api/v1/holds", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first,
        "second_slot": second})
    assert status == 201, hold
    hid = hold["hold_id"]
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/details", ticket,
                                 json={"name": name, "contact": contact})
    assert status == 202, body
    await env.deliver()
    return hid, env.sender.last_code(contact)


async def test_repeated_confirmation_books_once(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    hid, code = await start(env, first.id, second.id, "a", "+4915100000001")
    path = f"/api/v1/holds/{hid}/confirm"
    async with env.client.post(path, json={"code": code}, headers=env.headers("a")) as resp:
        assert resp.status == 201
        assert resp.headers["X-Queue-End-Session"] == "1"
        booking = await resp.json()
    results = await asyncio.gather(*(env.api("POST", path, "a", json={"code": code})
                                     for _ in range(5)))
    assert {status for status, _ in results} == {200}
    assert {body["booking_code"] for _, body in results} == {booking["booking_code"]}
    counts = await env.backend.counts()
    assert (counts["bookings"], counts["booked"], counts["held"]) == (1, 2, 0)


async def test_idempotency_key_is_bound_to_one_hold(env: Env) -> None:
    (p1, p2) = await env.add_pairs(2)
    hid, code = await start(env, p1[0].id, p1[1].id, "a", "+4915100000001")
    key = {"Idempotency-Key": "call-42"}
    status, booking = await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a",
                                    json={"code": code}, headers=key)
    assert status == 201
    status, again = await env.api("POST", f"/api/v1/holds/{hid}/confirm", "a",
                                  json={"code": code}, headers=key)
    assert (status, again["booking_code"]) == (200, booking["booking_code"])
    hid2, code2 = await start(env, p2[0].id, p2[1].id, "a", "+4915100000002", name="Other One")
    status, body = await env.api("POST", f"/api/v1/holds/{hid2}/confirm", "a",
                                 json={"code": code2}, headers=key)
    assert (status, body["error"]) == (422, "idempotency_key_reused")
    status, body = await env.api("POST", f"/api/v1/holds/{hid2}/confirm", "a",
                                 json={"code": code2}, headers={"Idempotency-Key": "x" * 101})
    assert (status, body["error"]) == (400, "idempotency_key_invalid")


async def test_one_person_holds_at_most_one_booking(env: Env) -> None:
    (p1, p2, p3) = await env.add_pairs(3)
    await env.book(p1, "a", name="Erika Muster", contact="0151 2345678")
    # Same person, written differently, from another admission: refused before a code is sent.
    status, hold = await env.api("POST", "/api/v1/holds", "b", json={
        "birth_date": "1938-12-24", "postcode": HOME_POSTCODE,
        "first_slot": p2[0].id, "second_slot": p2[1].id})
    assert status == 201
    status, body = await env.api("POST", f"/api/v1/holds/{hold['hold_id']}/details", "b",
                                 json={"name": "  erika   MUSTER ", "contact": "+49 151 2345678"})
    assert (status, body["error"]) == (409, "already_booked")
    await env.api("DELETE", f"/api/v1/holds/{hold['hold_id']}", "b")
    # Two holds of one new person racing to confirm: one booking.
    hids = []
    for ticket, pair in (("c", p2), ("d", p3)):
        hids.append(await start(env, pair[0].id, pair[1].id, ticket, "+4915177777777",
                                name="Max Mustermann"))
    results = await asyncio.gather(*(
        env.api("POST", f"/api/v1/holds/{hid}/confirm", ticket, json={"code": code})
        for (hid, code), ticket in zip(hids, ("c", "d"), strict=True)))
    assert sorted(status for status, _ in results) == [201, 409]
    assert (await env.backend.counts())["bookings"] == 2
    identities = [row["identity"] for row in await env.backend.db.fetch(
        "SELECT identity FROM bookings")]
    assert len(identities) == 2
    assert all(len(key) == 64 and "Muster" not in key for key in identities)


async def test_other_contact_details_do_not_make_a_new_person(env: Env) -> None:
    """Name and birth date make the person: a second phone or an e-mail books nothing more
    (the issue found three bookings of one person with two phones and an e-mail)."""
    (p1, p2, p3) = await env.add_pairs(3)
    await env.book(p1, "a", name="Erika Muster", contact="0151 2345678")
    for ticket, pair, contact in (("b", p2, "0170 9876543"), ("c", p3, "erika@example.org")):
        status, hold = await env.api("POST", "/api/v1/holds", ticket, json={
            "birth_date": OLD, "postcode": HOME_POSTCODE,
            "first_slot": pair[0].id, "second_slot": pair[1].id})
        assert status == 201
        status, body = await env.api("POST", f"/api/v1/holds/{hold['hold_id']}/details",
                                     ticket, json={"name": "Erika Muster", "contact": contact})
        assert (status, body["error"]) == (409, "already_booked")
    assert (await env.backend.counts())["bookings"] == 1


async def test_booking_lookup_needs_the_right_birth_date(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    booking = await env.book((first, second), "a")
    ref = {"booking_code": booking["booking_code"].lower().replace("-", ""), "birth_date": OLD}
    status, found = await env.api("POST", "/api/v1/bookings/lookup", "z", json=ref)
    assert (status, found["status"]) == (200, "active")
    assert found["first"]["slot"] == first.id
    status, body = await env.api("POST", "/api/v1/bookings/lookup", "z",
                                 json={**ref, "birth_date": "25.12.1938"})
    assert (status, body["error"]) == (404, "booking_not_found")


async def test_cancellation_needs_a_code_and_returns_the_pair(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    booking = await env.book((first, second), "a", contact="+4915100000009")
    ref = {"booking_code": booking["booking_code"], "birth_date": OLD}
    status, body = await env.api("POST", "/api/v1/bookings/cancel", "a", json=ref)
    assert (status, body["error"]) == (400, "code_missing")
    status, body = await env.api("POST", "/api/v1/bookings/cancel-code", "a", json=ref)
    assert status == 202 and body["verification"]["to"].startswith("+49151")
    await env.deliver()
    code = env.sender.last_code("+4915100000009")
    status, body = await env.api("POST", "/api/v1/bookings/cancel", "a",
                                 json={**ref, "code": code})
    assert (status, body["status"]) == (200, "cancelled")
    counts = await env.backend.counts()
    assert (counts["free"], counts["booked"], counts["bookings"]) == (2, 0, 0)
    # The person may book again after cancelling.
    again = await env.book((first, second), "b", contact="+4915100000009")
    assert again["booking_code"] != booking["booking_code"]


async def test_booking_code_is_sent_to_the_person(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    booking = await env.book((first, second), "a", contact="+4915100000077")
    await env.deliver()
    (sent,) = [m for m in env.sender.messages if m.kind == "booked"]
    assert sent.contact.address == "+4915100000077"
    assert booking["booking_code"] in sent.text
