"""Call-centre agents' passes (queue_gate/agents.py): issued, listed and revoked through the
admin API; used like a visitor's pass without queueing and without a booking ending them;
never usable by someone else's browser or from outside the agent networks."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from queue_gate.admin import create_admin_app
from queue_gate.settings import Settings
from tests.queue_gate.conftest import ADMIN_TOKEN, SECRET, FakeClock, Gate, GateFactory, auth
from tests.queue_gate.test_proxy import admit
from vaccine_queue.config import SettingsError
from vaccine_queue.contract import PASS_COOKIE, PASS_HEADER, PassCodec

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
AGENT_BROWSER = {"User-Agent": "Mozilla/5.0 (call centre desk 12)"}
OTHER_BROWSER = {"User-Agent": "Mozilla/5.0 (someone at home)"}
PATH = "/agent-passes"


async def admin_for(aiohttp_client: ClientFactory, gate: Gate) -> Client:
    return await aiohttp_client(create_admin_app(gate.app))


async def issue(admin: Client, body: object = None, *, room: str = "default",
                status: int = 201) -> dict[str, Any]:
    payload = {"agent": "Anna Schmidt", "hours": 8} if body is None else body
    async with admin.post(f"/admin/rooms/{room}{PATH}", json=payload, headers=auth()) as resp:
        assert resp.status == status, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


async def as_agent(gate: Gate, token: str, path: str = "/book", *,
                   headers: dict[str, str] | None = None,
                   method: str = "GET") -> tuple[int, dict[str, Any]]:
    """A request carrying the agent's pass in the header, no cookies kept."""
    gate.client.session.cookie_jar.clear()
    sent = {PASS_HEADER: token, "Accept": "application/json", **AGENT_BROWSER,
            **(headers or {})}
    async with gate.client.request(method, path, headers=sent,
                                   allow_redirects=False) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text.startswith("{") else {"text": text}


async def sample(gate: Gate, name: str) -> float:
    return gate.registry.get_sample_value(name, {"room": "default"}) or 0.0


@pytest.fixture
async def agent_gate(make_gate: GateFactory, aiohttp_client: ClientFactory
                     ) -> tuple[Gate, Client]:
    gate = await make_gate()
    await gate.tick()  # the room exists
    return gate, await admin_for(aiohttp_client, gate)


async def test_an_agent_pass_is_issued_listed_and_audited(
        agent_gate: tuple[Gate, Client], clock: FakeClock) -> None:
    gate, admin = agent_gate
    answer = await issue(admin)
    assert answer["expires_at"] == int(clock() + 8 * 3600)
    assert answer["agent"] == "Anna Schmidt" and answer["id"].startswith("agent.")
    # Signed like a visitor's pass: the booking backend's codec reads it.
    admission = PassCodec((SECRET,), clock=clock).load(answer["pass"], room="default")
    assert admission.ticket_id == answer["id"] and admission.expires_at == answer["expires_at"]
    assert await sample(gate, "queuegate_agent_passes_issued_total") == 1
    async with admin.get("/metrics") as resp:
        assert 'queuegate_agent_passes_active{room="default"} 1.0' in await resp.text()

    async with admin.get(f"/admin/rooms/default{PATH}", headers=auth()) as resp:
        listing = await resp.json()
    assert listing["limit"] == 50
    assert listing["agent_passes"] == [{
        "id": answer["id"], "agent": "Anna Schmidt", "issued_by": "admin",
        "issued_at": int(clock()), "expires_at": answer["expires_at"], "last_used": None}]

    clock.advance(60)
    assert (await as_agent(gate, answer["pass"]))[0] == 200
    async with admin.get(f"/admin/rooms/default{PATH}", headers=auth()) as resp:
        assert (await resp.json())["agent_passes"][0]["last_used"] == int(clock())

    async with admin.get("/admin/audit?room=default", headers=auth()) as resp:
        entries = (await resp.json())["entries"]
    assert entries[0]["field"] == "agent_pass" and entries[0]["operator"] == "admin"
    assert entries[0]["old"] is None
    assert entries[0]["new"] == {"id": answer["id"], "agent": "Anna Schmidt",
                                 "expires_at": answer["expires_at"]}


async def test_an_agent_goes_in_without_queueing_and_a_booking_does_not_end_the_pass(
        agent_gate: tuple[Gate, Client], redis_url: str) -> None:
    gate, _admin = agent_gate
    admin = _admin
    token = (await issue(admin))["pass"]
    # A long line of citizens and a paused room make no difference to an agent.
    async with admin.patch("/admin/rooms/default", json={"mode": "paused"},
                           headers=auth()) as resp:
        assert resp.status == 200
    for _ in range(3):
        status, body = await as_agent(gate, token, "/book", method="POST")
        assert status == 201 and body["path"] == "/book"
        # The backend confirms a booking: a visitor's session would end here.
        status, body = await as_agent(gate, token, "/done")
        assert status == 200 and body == {"text": "booked"}
    assert await sample(gate, "queuegate_agent_requests_total") == 6
    assert await sample(gate, "queuegate_passes_ended_total") == 0
    # Kept apart from visitors' passes: the room's session count does not include it.
    counter = Redis.from_url(redis_url, decode_responses=True)
    assert await counter.zcard("qg:{default}:passes") == 0
    await counter.aclose()


async def test_a_pass_cookie_works_too_and_another_browser_is_refused(
        agent_gate: tuple[Gate, Client]) -> None:
    gate, admin = agent_gate
    token = (await issue(admin))["pass"]
    gate.client.session.cookie_jar.update_cookies({PASS_COOKIE: token})
    async with gate.client.get("/book", headers=AGENT_BROWSER) as resp:
        assert resp.status == 200
    # The pass copied into a citizen's browser: a page saying why, and the cookie cleared.
    async with gate.client.get("/book", allow_redirects=False,
                               headers={**OTHER_BROWSER, "Accept": "text/html",
                                        "Accept-Language": "en"}) as resp:
        assert resp.status == 403
        assert "belongs to another browser" in await resp.text()
        assert resp.cookies[PASS_COOKIE].value == ""
    status, body = await as_agent(gate, token, headers=OTHER_BROWSER)
    assert (status, body["error"], body["join"]) == (403, "agent_pass_shared",
                                                     "/queue/api/join")
    status, body = await as_agent(gate, token, headers={**OTHER_BROWSER,
                                                        "Accept-Language": "de"})
    assert "gehört zu einem anderen Browser" in body["message"]
    assert gate.registry.get_sample_value(
        "queuegate_tokens_rejected_total",
        {"room": "default", "reason": "agent_pass_shared"}) == 3
    # The agent's own browser still gets in.
    assert (await as_agent(gate, token))[0] == 200


async def test_an_agent_pass_outside_the_agent_networks_is_refused(
        make_gate: GateFactory, aiohttp_client: ClientFactory, redis_url: str) -> None:
    gate = await make_gate(agent_networks=("10.20.0.0/16",))
    await gate.tick()
    token = (await issue(await admin_for(aiohttp_client, gate)))["pass"]
    counter = Redis.from_url(redis_url)
    before = int((await counter.info("stats"))["total_commands_processed"])
    status, body = await as_agent(gate, token)  # the test client is 127.0.0.1
    assert (status, body["error"]) == (403, "agent_network")
    # Refused before any Redis round trip (only the INFO calls themselves).
    assert int((await counter.info("stats"))["total_commands_processed"]) - before == 1
    await counter.aclose()

    inside = await make_gate(agent_networks=("127.0.0.0/8",))
    assert (await as_agent(inside, token))[0] == 200


async def test_behind_a_trusted_proxy_the_clients_address_counts(
        make_gate: GateFactory, aiohttp_client: ClientFactory) -> None:
    gate = await make_gate(agent_networks=("10.20.0.0/16",), trusted_proxies=("127.0.0.1/32",))
    await gate.tick()
    token = (await issue(await admin_for(aiohttp_client, gate)))["pass"]
    inside = {"X-Forwarded-For": "10.20.3.4"}
    assert (await as_agent(gate, token, headers=inside))[0] == 200
    status, body = await as_agent(gate, token, headers={"X-Forwarded-For": "203.0.113.9"})
    assert (status, body["error"]) == (403, "agent_network")
    # A forged first entry does not help: the last address before our proxies counts.
    status, body = await as_agent(
        gate, token, headers={"X-Forwarded-For": "10.20.3.4, 203.0.113.9"})
    assert (status, body["error"]) == (403, "agent_network")


async def test_an_agent_pass_ends_with_its_shift_and_when_revoked(
        agent_gate: tuple[Gate, Client], clock: FakeClock) -> None:
    gate, admin = agent_gate
    shift = await issue(admin, {"agent": "Anna", "hours": 1})
    other = await issue(admin, {"agent": "Ben", "hours": 12})
    clock.advance(3600 - 1)
    assert (await as_agent(gate, shift["pass"]))[0] == 200
    clock.advance(1)
    # The signature says expired (the gate and the backend both check it).
    status, body = await as_agent(gate, shift["pass"])
    assert status in (401, 403)

    async with admin.delete(f"/admin/rooms/default{PATH}/{other['id']}",
                            headers=auth()) as resp:
        assert resp.status == 200
        assert await resp.json() == {"id": other["id"], "agent": "Ben", "revoked": True}
    status, body = await as_agent(gate, other["pass"])
    assert (status, body["error"]) == (403, "agent_pass_ended")
    assert "shift lead" in (await as_agent(gate, other["pass"],
                                           headers={"Accept-Language": "en"}))[1]["message"]
    async with admin.delete(f"/admin/rooms/default{PATH}/{other['id']}",
                            headers=auth()) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "agent_pass_not_found"
    async with admin.get(f"/admin/rooms/default{PATH}", headers=auth()) as resp:
        assert (await resp.json())["agent_passes"] == []
    async with admin.get("/admin/audit?room=default", headers=auth()) as resp:
        revoked = (await resp.json())["entries"][0]
    assert revoked["field"] == "agent_pass" and revoked["new"] is None
    assert revoked["old"]["id"] == other["id"] and revoked["old"]["agent"] == "Ben"
    assert await sample(gate, "queuegate_agent_passes_revoked_total") == 1
    async with admin.get("/metrics") as resp:
        assert 'queuegate_agent_passes_active{room="default"} 0.0' in await resp.text()


async def test_more_agent_passes_than_allowed_get_409(
        make_gate: GateFactory, aiohttp_client: ClientFactory, clock: FakeClock) -> None:
    gate = await make_gate(agent_passes_max=2)
    await gate.tick()
    admin = await admin_for(aiohttp_client, gate)
    first = await issue(admin, {"agent": "A", "hours": 1})
    await issue(admin, {"agent": "B", "hours": 8})
    refused = await issue(admin, {"agent": "C", "hours": 8}, status=409)
    assert refused["error"] == "agent_passes_exhausted"
    assert "QUEUE_GATE_AGENT_PASSES_MAX" in refused["message"]
    # A revoked or expired pass frees its place.
    async with admin.delete(f"/admin/rooms/default{PATH}/{first['id']}",
                            headers=auth()) as resp:
        assert resp.status == 200
    await issue(admin, {"agent": "C", "hours": 1})
    await issue(admin, {"agent": "D", "hours": 8}, status=409)
    clock.advance(3600)
    await issue(admin, {"agent": "D", "hours": 8})


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"agent": "Anna"}, 422, "invalid_agent_pass"),
    ({"hours": 8}, 422, "invalid_agent_pass"),
    ({"agent": "", "hours": 8}, 422, "invalid_agent_pass"),
    ({"agent": "   ", "hours": 8}, 422, "invalid_agent_pass"),
    ({"agent": "x" * 65, "hours": 8}, 422, "invalid_agent_pass"),
    ({"agent": "Anna\nSchmidt", "hours": 8}, 422, "invalid_agent_pass"),
    ({"agent": 7, "hours": 8}, 422, "invalid_agent_pass"),
    ({"agent": "Anna", "hours": 0}, 422, "invalid_agent_pass"),
    ({"agent": "Anna", "hours": 13}, 422, "invalid_agent_pass"),
    ({"agent": "Anna", "hours": 8.5}, 422, "invalid_agent_pass"),
    ({"agent": "Anna", "hours": "8"}, 422, "invalid_agent_pass"),
    ({"agent": "Anna", "hours": True}, 422, "invalid_agent_pass"),
    ({"agent": "Anna", "hours": 8, "room": "x"}, 422, "invalid_agent_pass"),
    (["Anna", 8], 422, "invalid_agent_pass"),
    (None, 422, "invalid_agent_pass"),
])
async def test_bad_bodies_get_a_readable_422(agent_gate: tuple[Gate, Client], body: object,
                                             status: int, error: str) -> None:
    _, admin = agent_gate
    async with admin.post(f"/admin/rooms/default{PATH}", data=json.dumps(body),
                          headers={**auth(), "Content-Type": "application/json"}) as resp:
        assert resp.status == status
        answer = await resp.json()
    assert answer["error"] == error and answer["message"]


async def test_other_bad_requests(agent_gate: tuple[Gate, Client]) -> None:
    _, admin = agent_gate
    for raw in (b"not json", b"\xff\xfe", b""):
        async with admin.post(f"/admin/rooms/default{PATH}", data=raw,
                              headers=auth()) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == "invalid_json"
    async with admin.post(f"/admin/rooms/default{PATH}",
                          json={"agent": "Anna", "hours": 8}) as resp:
        assert resp.status == 401
    async with admin.post(f"/admin/rooms/nowhere{PATH}", json={"agent": "Anna", "hours": 8},
                          headers=auth()) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "room_not_found"
    async with admin.get(f"/admin/rooms/nowhere{PATH}", headers=auth()) as resp:
        assert resp.status == 404
    async with admin.post(f"/admin/rooms/Bad%20Room{PATH}",
                          json={"agent": "Anna", "hours": 8}, headers=auth()) as resp:
        assert resp.status == 404
    for bad_id in ("nope", "agent.short", "agent." + "x" * 40):
        async with admin.delete(f"/admin/rooms/default{PATH}/{bad_id}",
                                headers=auth()) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"] == "agent_pass_not_found"


async def test_a_visitors_pass_still_ends_with_the_booking(
        agent_gate: tuple[Gate, Client], clock: FakeClock) -> None:
    gate, _ = agent_gate
    await admit(gate, clock)
    async with gate.client.get("/done") as resp:
        assert await resp.text() == "booked"
    async with gate.client.get("/book", allow_redirects=False,
                               headers={"Accept": "application/json"}) as resp:
        assert resp.status == 401


async def test_a_forged_agent_pass_is_refused(agent_gate: tuple[Gate, Client],
                                              clock: FakeClock) -> None:
    """An id that was never issued, signed with another secret or with ours (a leaked
    secret is out of scope, but Redis must still have the record)."""
    gate, _ = agent_gate
    from vaccine_queue.contract import AdmissionPass

    never = PassCodec((SECRET,), clock=clock).sign(
        AdmissionPass("default", "agent.AAAAAAAAAAAAAAAA", int(clock() + 3600)))
    status, body = await as_agent(gate, never)
    assert (status, body["error"]) == (403, "agent_pass_ended")
    foreign = PassCodec(("another-secret-0123456789",), clock=clock).sign(
        AdmissionPass("default", "agent.AAAAAAAAAAAAAAAA", int(clock() + 3600)))
    status, body = await as_agent(gate, foreign)
    assert (status, body["error"]) == (401, "pass_invalid")


def test_the_settings() -> None:
    base = {"QUEUE_GATE_SECRETS": SECRET, "QUEUE_GATE_ADMIN_TOKEN": ADMIN_TOKEN}
    settings = Settings.from_env({**base, "QUEUE_GATE_AGENT_PASSES_MAX": "5",
                                  "QUEUE_GATE_AGENT_PASS_MAX_BROWSERS": "2",
                                  "QUEUE_GATE_AGENT_NETWORKS": "10.0.0.0/8, 2001:db8::/32"})
    assert settings.agent_passes_max == 5 and settings.agent_pass_max_browsers == 2
    assert settings.agent_networks == ("10.0.0.0/8", "2001:db8::/32")
    default = Settings.from_env(base)
    assert (default.agent_passes_max, default.agent_pass_max_browsers,
            default.agent_networks) == (50, 1, ())
    for variable, bad in (("QUEUE_GATE_AGENT_PASSES_MAX", "0"),
                          ("QUEUE_GATE_AGENT_PASS_MAX_BROWSERS", "0"),
                          ("QUEUE_GATE_AGENT_NETWORKS", "call-centre")):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({**base, variable: bad})


async def test_the_consoles_audit_names_the_agent_and_the_pass(
        make_gate: GateFactory, aiohttp_client: ClientFactory) -> None:
    from tests.queue_gate.test_console import OPS_TOKEN, sign_in

    gate = await make_gate(admin_tokens=(f"ops:{OPS_TOKEN}",))
    await gate.tick()
    admin = await admin_for(aiohttp_client, gate)
    answer = await issue(admin)
    await sign_in(admin)
    for lang, label in (("en", "Call-centre agent&#39;s pass"),
                        ("de", "Einlass für Hotline-Mitarbeitende")):
        async with admin.get(f"/console/audit?lang={lang}") as resp:
            assert resp.status == 200
            page = await resp.text()
        assert label in page
        assert f"Anna Schmidt ({answer['id']})" in page
