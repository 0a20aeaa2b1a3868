"""The admin port: bearer auth, nothing administrative on the public port, releases that
serve the waiting list first, invitations, metrics, health."""

from __future__ import annotations

from typing import Any

from tests.booking_backend.conftest import (
    ADMIN_TOKEN,
    HOME_POSTCODE,
    OLD,
    Env,
    MakeEnv,
    pair_slots,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def admin(env: Env, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    async with env.admin.request(method, path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


async def test_admin_needs_the_bearer_token(env: Env) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN},
                    {"Authorization": f"Basic {ADMIN_TOKEN}"}):
        async with env.admin.get("/admin/stats", headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await resp.json())["error"] == "unauthorized"
    status, body = await admin(env, "GET", "/admin/stats")
    assert status == 200 and body["counts"]["capacity"] == 0


async def test_no_token_configured_means_no_access(make_env: MakeEnv) -> None:
    env = await make_env(catalogue=False, admin_token="", dev=True)
    async with env.admin.get("/admin/stats", headers={"Authorization": "Bearer "}) as resp:
        assert resp.status == 401


async def test_admin_routes_are_not_on_the_public_port(env: Env) -> None:
    for path in ("/admin/stats", "/metrics", "/healthz", "/admin/catalogue/demo"):
        async with env.client.get(path, headers={**env.headers(), **AUTH}) as resp:
            assert resp.status == 404, path


async def test_release_gives_two_thirds_to_the_waiting_list(env: Env) -> None:
    for i in range(10):
        status, _ = await env.api("POST", "/api/v1/waitlist", f"w{i}", json={
            "birth_date": OLD, "postcode": HOME_POSTCODE, "name": f"Wait {i}",
            "contact": f"+4915133333{i:03d}"})
        assert status == 201
    slots = []
    for i in range(6):
        for slot in pair_slots("braunschweig", i):
            slots.append({"centre": "braunschweig", "start": slot.start, "capacity": 1})
    status, body = await admin(env, "POST", "/admin/slots", json={"slots": slots})
    assert status == 200
    assert body == {"units_added": 12, "waitlist_assigned": 4}  # 2/3 of 6 pairs
    status, stats = await admin(env, "GET", "/admin/stats")
    assert stats["counts"]["waiting"] == 6
    assert stats["counts"]["bookings"] == 4
    assert stats["counts"]["free"] == 4
    assert stats["centres"]["braunschweig"] == {"capacity": 12, "free": 4, "held": 0,
                                                "booked": 8}
    await env.deliver()
    told = sorted(m.contact.address for m in env.sender.messages if m.kind == "assigned")
    assert told == [f"+4915133333{i:03d}" for i in range(4)]  # in order of joining
    assert all("Buchungscode" in m.text for m in env.sender.messages)


async def test_slot_file_errors_are_readable(env: Env) -> None:
    for body in ({"slots": [{"centre": "nowhere", "start": 1, "capacity": 1}]},
                 {"slots": [{"centre": "braunschweig", "start": "soon", "capacity": 1}]},
                 {"slots": "x"}, [1]):
        status, answer = await admin(env, "POST", "/admin/slots", json=body)
        assert status == 422 and answer["message"], body
    async with env.admin.post("/admin/slots", data="{", headers=AUTH) as resp:
        assert resp.status == 400


async def test_catalogue_upload_is_validated(env: Env) -> None:
    status, body = await admin(env, "POST", "/admin/catalogue", data='{"districts": []}')
    assert status == 422 and "centres" in body["message"]
    status, body = await admin(env, "POST", "/admin/catalogue/demo")
    assert body == {"centres": 50, "districts": 45}


async def test_generate_demo_slots(env: Env) -> None:
    status, body = await admin(env, "POST", "/admin/slots/generate",
                               json={"days": 2, "first_day": "2021-01-11", "units": 1,
                                     "step_minutes": 240})
    assert status == 200
    assert body["units_added"] == 50 * 2 * 3  # 50 centres, 2 days, 8:00/12:00/16:00
    status, body = await admin(env, "POST", "/admin/slots/generate", json={"days": 0})
    assert status == 422


async def test_invitation_waves(make_env: MakeEnv) -> None:
    env = await make_env(invitations_required=True)
    status, body = await admin(env, "POST", "/admin/invitations",
                               json={"wave": "80plus-1", "min_age": 80, "count": 3})
    assert status == 201 and len(body["codes"]) == 3
    code = body["codes"][0]
    status, answer = await env.api("POST", "/api/v1/eligibility",
                                   json={"birth_date": OLD, "postcode": HOME_POSTCODE})
    assert (answer["eligible"], answer["reason"]) == (False, "invitation_needed")
    status, answer = await env.api("POST", "/api/v1/eligibility", json={
        "birth_date": "1950-01-01", "postcode": HOME_POSTCODE, "invitation_code": code})
    assert (answer["eligible"], answer["reason"]) == (False, "invitation_age")
    status, answer = await env.api("POST", "/api/v1/eligibility", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "invitation_code": "ABCD-EFGH-JKLM"})
    assert (status, answer["error"]) == (400, "invitation_invalid")

    ((first, second),) = await env.add_pairs(1)
    status, hold = await env.api("POST", "/api/v1/holds", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "invitation_code": code.lower(),
        "first_slot": first.id, "second_slot": second.id})
    assert status == 201, hold
    hid = hold["hold_id"]
    await env.api("POST", f"/api/v1/holds/{hid}/details",
                  json={"name": "Ida Invited", "contact": "ida@example.org"})
    await env.deliver()
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/confirm",
                              json={"code": env.sender.last_code("ida@example.org")})
    assert status == 201
    status, answer = await env.api("POST", "/api/v1/eligibility", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "invitation_code": code})
    assert (status, answer["error"]) == (400, "invitation_invalid")  # used once
    status, waves = await admin(env, "GET", "/admin/invitations")
    assert waves["waves"][0]["wave"] == "80plus-1"


async def test_metrics_and_health(env: Env) -> None:
    await env.add_pairs(1)
    await env.api("POST", "/api/v1/groups")  # a 405, counted
    async with env.admin.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert 'booking_slot_units{state="free"} 2.0' in text
    assert 'booking_http_requests_total{route="unmatched",status="4xx",surface="api"}' in text
    async with env.admin.get("/healthz") as resp:
        assert (resp.status, (await resp.json())["database"]) == (200, True)


async def test_sweep_endpoint(env: Env) -> None:
    status, body = await admin(env, "POST", "/admin/sweep")
    assert (status, body) == (200, {"holds_expired": 0, "codes_expired": 0})
