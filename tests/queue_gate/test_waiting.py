"""Waiting: joining, the status API, the waiting page, collecting the pass."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

import pytest
from redis.asyncio import Redis

from queue_gate.line import VisitorStatus
from queue_gate.tickets import TicketSigner
from queue_gate.waiting import status_body
from tests.queue_gate.conftest import SECRET, FakeClock, Gate, GateFactory, join, status
from vaccine_queue.contract import PASS_COOKIE, TICKET_COOKIE


async def test_join_returns_a_signed_ticket_and_place(gate: Gate) -> None:
    response = await gate.client.post("/queue/api/join")
    assert response.status == 201
    body = await response.json()
    assert body["state"] == "waiting"
    assert body["position"] == 1
    assert isinstance(body["ticket"], str)
    assert body["poll_after_s"] > 0
    assert response.cookies[TICKET_COOKIE].value == body["ticket"]
    assert response.cookies[TICKET_COOKIE]["httponly"]
    assert response.headers["Cache-Control"] == "no-store"


async def test_places_count_from_the_front(gate: Gate, clock: FakeClock) -> None:
    tickets = [await join(gate) for _ in range(5)]
    assert [t["position"] for t in tickets] == [1, 2, 3, 4, 5]
    clock.advance(2)
    await gate.tick()
    await gate.tick()
    assert (await status(gate, tickets[4]["ticket"]))[1]["position"] == 3


async def test_joining_again_with_a_ticket_keeps_the_place(gate: Gate) -> None:
    first = await gate.client.post("/queue/api/join")
    body = await first.json()
    await join(gate)  # someone else, without our cookie
    # The client's cookie jar still holds our ticket: a reload or a second tab.
    gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: body["ticket"]})
    again = await gate.client.post("/queue/api/join")
    assert again.status == 200
    again_body = await again.json()
    assert again_body["ticket"] == body["ticket"]
    assert again_body["position"] == 1


async def test_turn_comes_pass_is_issued_once_per_ticket(gate: Gate, clock: FakeClock) -> None:
    ticket = (await join(gate))["ticket"]
    clock.advance(1)
    await gate.tick()
    response = await gate.client.get("/queue/api/status",
                                     headers={"Authorization": f"Bearer {ticket}"})
    body = await response.json()
    assert body["state"] == "admitted"
    assert response.cookies[PASS_COOKIE].value == body["pass"]
    # Asking again (a lost response, a second tab) gives the same session, not a new one.
    clock.advance(30)
    code, again = await status(gate, ticket)
    assert code == 200
    assert again["pass_expires_at"] == body["pass_expires_at"]
    # Once the session is over the ticket cannot start another.
    clock.advance(15 * 60)
    code, spent = await status(gate, ticket)
    assert code == 401
    assert spent["error"] == "session_ended"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "",
        "eyJhIjoxfQ.AAAA.BBBB",
        "x" * 5000,
    ],
)
async def test_bad_tickets_get_401_json(gate: Gate, token: str) -> None:
    response = await gate.client.get("/queue/api/status",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
    body = await response.json()
    assert body["error"] in ("ticket_invalid", "ticket_missing")
    assert body["message"]


async def test_forged_expired_and_foreign_tickets_are_refused(
    gate: Gate, clock: FakeClock
) -> None:
    forged = TicketSigner(("attacker-secret",), "default", ticket_max_age_s=86400, clock=clock)
    foreign = TicketSigner((SECRET,), "other-room", ticket_max_age_s=86400, clock=clock)
    snapshot_epoch = (await join(gate))  # creates the room
    assert snapshot_epoch["position"] == 1
    _, forged_token = forged.issue_ticket("x", 1, 0)
    _, foreign_token = foreign.issue_ticket("x", 1, 0)
    old = FakeClock(clock.now - 2 * 86400)
    _, expired_token = TicketSigner((SECRET,), "default", ticket_max_age_s=86400,
                                    clock=old).issue_ticket("x", 1, 0)
    for token, code in ((forged_token, "ticket_invalid"), (foreign_token, "ticket_foreign"),
                        (expired_token, "ticket_expired")):
        http, body = await status(gate, token)
        assert (http, body["error"]) == (401, code)


async def test_a_ticket_from_before_a_room_reset_is_stale(gate: Gate, redis_client: Redis) -> None:
    ticket = (await join(gate))["ticket"]
    await redis_client.hset("qg:{default}:config", "epoch", "new-epoch")
    await gate.tick()
    code, body = await status(gate, ticket)
    assert (code, body["error"]) == (401, "ticket_stale")


async def test_missing_ticket(gate: Gate) -> None:
    response = await gate.client.get("/queue/api/status")
    assert response.status == 401
    assert (await response.json())["error"] == "ticket_missing"


async def test_waiting_page_joins_and_shows_the_place(gate: Gate) -> None:
    await join(gate)
    response = await gate.client.get("/queue/wait?next=/book&lang=en",
                                     headers={"Accept": "text/html"})
    assert response.status == 200
    html = await response.text()
    assert TICKET_COOKIE in response.cookies
    assert 'id="position">2<' in html
    assert "You do not need to do anything" in html
    assert '<meta http-equiv="refresh"' in html
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_page_without_javascript_says_when_it_was_updated_and_fills_the_bar(
        gate: Gate, clock: FakeClock) -> None:
    """Without JavaScript the "updated" time is the server's (it was empty), and the first
    in line sees a full bar (nobody ahead; it was empty)."""
    response = await gate.client.get("/queue/wait", headers={"Accept": "text/html"})
    html = await response.text()
    assert 'id="position">1<' in html
    shown = dt.datetime.fromtimestamp(clock.now, zoneinfo.ZoneInfo("Europe/Berlin"))
    assert f'<span id="updated">{shown:%H:%M}</span>' in html
    assert '<progress id="progress" max="100" value="100">' in html


async def test_waiting_page_speaks_german_by_default_and_formats_numbers(
    make_gate: GateFactory, redis_client: Redis,
) -> None:
    gate = await make_gate()
    await gate.tick()
    await redis_client.hset("qg:{default}:state", "seq", 41201)
    response = await gate.client.get("/queue/wait", headers={"Accept-Language": "de-DE,de"})
    html = await response.text()
    assert 'lang="de"' in html
    assert "Ihr Platz in der Schlange" in html
    assert "41.202" in html


async def test_waiting_page_keeps_the_place_on_return(gate: Gate) -> None:
    first = await gate.client.get("/queue/wait")
    token = first.cookies[TICKET_COOKIE].value
    await join(gate)
    gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: token})
    again = await gate.client.get("/queue/wait")
    assert TICKET_COOKIE not in again.cookies  # no new ticket
    assert 'id="position">1<' in await again.text()


async def test_waiting_page_with_a_forged_cookie_gives_a_new_place(gate: Gate) -> None:
    gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: "forged.token.value"})
    response = await gate.client.get("/queue/wait?lang=en")
    assert response.status == 200
    assert TICKET_COOKIE in response.cookies
    assert "not valid" in await response.text()


async def test_admitted_visitor_is_taken_to_the_page_they_asked_for(
    gate: Gate, clock: FakeClock
) -> None:
    first = await gate.client.get("/queue/wait?next=/book/slots%3Fpostcode%3D30159",
                                  allow_redirects=False)
    assert first.status == 200
    clock.advance(1)
    await gate.tick()
    second = await gate.client.get("/queue/wait?next=/book/slots%3Fpostcode%3D30159",
                                   allow_redirects=False)
    assert second.status == 303
    assert second.headers["Location"] == "/book/slots?postcode=30159"
    assert PASS_COOKIE in second.cookies


@pytest.mark.parametrize(
    "next_param",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)",
     "/queue/api/join", "/%0d%0aSet-Cookie:x=1"],
)
async def test_no_open_redirect(gate: Gate, clock: FakeClock, next_param: str) -> None:
    await gate.client.get("/queue/wait")
    clock.advance(1)
    await gate.tick()
    response = await gate.client.get("/queue/wait", params={"next": next_param},
                                     allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "evil" not in location or location.startswith("/%")


async def test_unknown_queue_paths_are_friendly_404_pages(gate: Gate) -> None:
    response = await gate.client.get("/queue/nothing-here", headers={"Accept": "text/html"})
    assert response.status == 404
    assert "<html" in await response.text()
    api = await gate.client.get("/queue/api/nothing")
    assert api.status == 404
    assert (await api.json())["error"] == "not_found"


async def test_wrong_method_is_a_clear_4xx(gate: Gate) -> None:
    response = await gate.client.get("/queue/api/join")
    assert response.status == 405
    assert (await response.json())["error"]


async def test_status_poll_costs_no_redis_round_trip(gate: Gate, redis_client: Redis) -> None:
    tickets = [(await join(gate))["ticket"] for _ in range(3)]
    await gate.tick()
    before = await redis_client.info("stats")
    for _ in range(20):
        for ticket in tickets:
            code, body = await status(gate, ticket)
            assert code == 200 and body["state"] == "waiting"
    after = await redis_client.info("stats")
    # Only our own two INFO calls (and nothing from the 60 polls) reached Redis.
    assert after["total_commands_processed"] - before["total_commands_processed"] == 1


async def test_redis_down_gives_a_busy_page_not_an_error(
    make_gate: GateFactory,
) -> None:
    from devtools.processes import free_port

    gate = await make_gate(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    api = await gate.client.post("/queue/api/join")
    assert api.status == 503
    assert api.headers["Retry-After"]
    assert (await api.json())["error"] == "busy"
    page = await gate.client.get("/queue/wait", headers={"Accept": "text/html"})
    assert page.status == 503
    assert page.headers["Retry-After"] == "5"
    html = await page.text()
    assert "<html" in html
    # The busy page tries again by itself when it says so.
    assert '<meta http-equiv="refresh" content="5">' in html
    health = await gate.client.get("/queue/healthz")
    assert health.status == 503


async def test_json_bodies_are_not_needed_nor_trusted(gate: Gate) -> None:
    response = await gate.client.post("/queue/api/join", data=b"\xff\xfe not json",
                                      headers={"Content-Type": "application/json"})
    assert response.status == 201
    body = json.loads(await response.text())
    assert body["position"] == 1


async def test_joins_arriving_together_share_round_trips_and_keep_order(
    gate: Gate, redis_client: Redis
) -> None:
    import asyncio

    import aiohttp

    before = await redis_client.info("commandstats")
    # 300 different visitors: no cookie jar, so nobody comes back with a ticket.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as visitors:
        url = gate.client.make_url("/queue/api/join")
        responses = await asyncio.gather(*(visitors.post(url) for _ in range(300)))
        bodies = [json.loads(await r.text()) for r in responses]
    assert all(r.status == 201 for r in responses)
    assert sorted(int(b["position"]) for b in bodies) == list(range(1, 301))
    assert len({b["ticket"] for b in bodies}) == 300
    after = await redis_client.info("commandstats")

    def calls(stats: dict[str, dict[str, int]]) -> int:
        return sum(int(stats.get(name, {}).get("calls", 0))
                   for name in ("cmdstat_evalsha", "cmdstat_eval"))

    assert calls(after) - calls(before) < 300


async def test_a_batch_applies_the_join_limit_per_address(make_gate: GateFactory) -> None:
    import asyncio

    gate = await make_gate(join_limit=3, trusted_proxies=("127.0.0.1/32",))
    addresses = ["203.0.113.1"] * 5 + ["203.0.113.2"] * 2
    responses = await asyncio.gather(*(
        gate.client.post("/queue/api/join", headers={"X-Forwarded-For": address})
        for address in addresses))
    by_address: dict[str, list[int]] = {}
    for address, response in zip(addresses, responses, strict=True):
        by_address.setdefault(address, []).append(response.status)
    assert sorted(by_address["203.0.113.1"]) == [201, 201, 201, 429, 429]
    assert by_address["203.0.113.2"] == [201, 201]


@pytest.mark.parametrize("status_fields", [
    {"state": "waiting", "position": 41_237, "estimated_wait_s": 1649.48, "poll_after_s": 119.9,
     "message": "", "progress": 0.12345},
    {"state": "paused", "position": 3, "estimated_wait_s": None, "poll_after_s": 96.0,
     "message": 'Pause bis 8:30 \u2013 "Impfstoff" kommt\nspäter \\ 💉', "progress": 1.0},
    {"state": "waiting", "position": 1, "estimated_wait_s": 0.4, "poll_after_s": 1.6,
     "message": "</script>", "progress": 0.0},
    {"state": "prequeue", "position": None, "estimated_wait_s": None, "poll_after_s": 2.2,
     "message": "", "progress": 0.0, "opens_at": 1_767_250_800.0},
    {"state": "admitted", "position": 1, "estimated_wait_s": 0.0, "poll_after_s": 2.0,
     "message": "", "progress": 1.0, "pass_token": "p.a.s.s", "pass_expires_at": 1_767_251_700},
])
def test_the_status_body_is_exactly_the_json_of_the_status(
        status_fields: dict[str, Any]) -> None:
    """The hot path writes the common status body out by hand: it must say what
    `as_json()` says, whatever the operator's message holds."""
    status = VisitorStatus(**status_fields)
    assert json.loads(status_body(status)) == status.as_json()
