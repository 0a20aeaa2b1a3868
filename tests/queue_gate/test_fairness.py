"""Fair under surge: the opening lottery, visitors who left, one place each, session caps."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from queue_gate.keys import room_view_key, store_key
from queue_gate.settings import Settings
from queue_gate.store import RoomStore
from queue_gate.tickets import TicketSigner
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth, join, status
from vaccine_queue.contract import PASS_HEADER, TICKET_COOKIE

Client = TestClient[web.Request, web.Application]


def iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat()


async def open_at(gate: Gate, when: float) -> None:
    await gate.app[store_key].update_config({"opens_at": when})
    await gate.tick()


# --- the opening lottery --------------------------------------------------------------


async def test_prequeue_then_a_draw_ahead_of_later_arrivals(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=0)  # nobody admitted: places stay put
    await open_at(gate, clock.now + 1800)
    early = [await join(gate) for _ in range(30)]
    for ticket in early:
        assert ticket["state"] == "prequeue"
        assert ticket["position"] is None
        assert ticket["opens_at"] == iso(clock.now + 1800)
    code, body = await status(gate, early[0]["ticket"])
    assert (code, body["state"]) == (200, "prequeue")
    clock.advance(1800)
    await gate.tick()
    late = await join(gate)
    assert late["position"] == 31  # behind everyone who came before the opening
    places: list[int] = []
    for ticket in early:
        code, body = await status(gate, ticket["ticket"])
        assert code == 200
        assert isinstance(body["ticket"], str)  # the ticket now carries its drawn number
        again_code, again = await status(gate, body["ticket"])
        assert again_code == 200
        assert again["position"] == body["position"]  # one place, however often one asks
        assert "ticket" not in again
        assert isinstance(body["position"], int)
        places.append(body["position"])
    assert sorted(places) == list(range(1, 31))
    assert places != list(range(1, 31))  # 1 in 30! to fail by chance


async def test_a_join_at_opening_time_triggers_the_draw_itself(
    gate: Gate, clock: FakeClock
) -> None:
    """No gate ticked since the opening time passed: the join freezes the draw first."""
    await open_at(gate, clock.now + 60)
    early = [await join(gate) for _ in range(5)]
    clock.advance(61)
    late = await join(gate)
    assert late["position"] == 6
    numbers = [(await status(gate, t["ticket"]))[1]["position"] for t in early]
    assert sorted(n for n in numbers if isinstance(n, int)) == [1, 2, 3, 4, 5]


async def test_refreshing_at_the_last_second_gains_nothing(
    redis_url: str, backend: object, clock: FakeClock
) -> None:
    """Chi-square over many draws: where a visitor lands does not depend on when, before
    the opening, they arrived."""
    settings = Settings(redis_url=redis_url, secrets=("s",), admin_token="t", join_limit=0,
                        room="lottery", abandon_grace_s=0)
    client = Redis.from_url(redis_url, decode_responses=True)
    store = RoomStore(client, settings, clock=clock)
    size, draws = 8, 300
    counts = [[0] * size for _ in range(size)]
    try:
        await store.tick()
        for _ in range(draws):
            opening = clock.now + 100
            await store.update_config({"opens_at": opening})
            ids = [TicketSigner.new_ticket_id() for _ in range(size)]
            for arrival, ticket_id in enumerate(ids):
                clock.advance(1)
                result = await store.join(ticket_id)
                assert result.mode == "prequeue", arrival
            clock.advance(100)
            snapshot = await store.tick()
            for arrival, ticket_id in enumerate(ids):
                place = await store.draw_place(ticket_id, int(opening))
                assert place.outcome == "drawn"
                counts[arrival][place.number - snapshot.draw_base - 1] += 1
    finally:
        await client.aclose()
    expected = draws / size
    chi2 = sum((observed - expected) ** 2 / expected for row in counts for observed in row)
    # df = (8-1)*(8-1) = 49; P(chi2 > 110) < 1e-6 for a fair draw (Wilson-Hilferty).
    assert chi2 < 110, counts
    # And every visitor got exactly one place in every draw.
    assert all(sum(row) == draws for row in counts)
    assert all(sum(col) == draws for col in zip(*counts, strict=True))


async def test_the_waiting_page_tells_when_the_room_opens(gate: Gate, clock: FakeClock) -> None:
    opening = dt.datetime(2027, 1, 28, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    clock.now = opening.timestamp() - 3600
    await open_at(gate, opening.timestamp())
    response = await gate.client.get("/queue/wait?lang=en")
    html = await response.text()
    assert response.status == 200
    assert "Booking opens on 28 January 2027 at 08:00." in html
    assert "random order" in html
    german = await gate.client.get("/queue/wait?lang=de")
    assert "am 28.01.2027 um 08:00 Uhr" in await german.text()


async def test_opening_time_through_the_admin_api(admin: Client, gate: Gate) -> None:
    await gate.tick()
    response = await admin.patch("/admin/rooms/default", headers=auth(),
                                 json={"opens_at": "2027-01-28T08:00:00+01:00"})
    assert response.status == 200
    assert (await response.json())["opens_at"] == "2027-01-28T07:00:00+00:00"
    for bad in ("tomorrow", "2027-01-28T08:00:00", 1800000000):
        refused = await admin.patch("/admin/rooms/default", headers=auth(),
                                    json={"opens_at": bad})
        assert refused.status == 422
        assert "ISO 8601" in (await refused.json())["message"]
    cleared = await admin.patch("/admin/rooms/default", headers=auth(), json={"opens_at": None})
    assert (await cleared.json())["opens_at"] is None


# --- visitors who left ------------------------------------------------------------------


async def poll_all(gate: Gate, tickets: list[str]) -> None:
    for ticket in tickets:
        code, _ = await status(gate, ticket)
        assert code == 200


async def test_visitors_who_left_do_not_use_admissions(gate: Gate, clock: FakeClock) -> None:
    await gate.app[store_key].update_config({"mode": "paused"})
    tickets = [str((await join(gate))["ticket"]) for _ in range(10)]
    present = [t for i, t in enumerate(tickets) if i not in (1, 3)]
    for _ in range(24):  # 480 s: longer than 1.5 x the 300 s grace period
        clock.advance(20)
        await poll_all(gate, present)
        await gate.tick()
    await gate.app[store_key].update_config({"mode": "queue"})
    await gate.tick()
    for _ in range(8):
        clock.advance(1)
        await gate.tick()
    states = [(await status(gate, t))[1]["state"] for t in present]
    assert states == ["admitted"] * 8  # eight admissions, all to people still there
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None
    assert (snapshot.admitted, snapshot.skipped) == (8, 2)
    # Visitor 2 comes back: not sent to the back, but first at the next release.
    code, back = await status(gate, tickets[1])
    assert (code, back["state"], back["position"]) == (200, "waiting", 1)
    newcomer = await join(gate)
    clock.advance(1)
    await gate.tick()
    assert (await status(gate, tickets[1]))[1]["state"] == "admitted"
    assert (await status(gate, str(newcomer["ticket"])))[1]["state"] == "waiting"


async def test_a_short_absence_keeps_the_place(gate: Gate, clock: FakeClock) -> None:
    await gate.app[store_key].update_config({"mode": "paused"})
    tickets = [str((await join(gate))["ticket"]) for _ in range(3)]
    clock.advance(100)  # everyone away for 100 s, within the 300 s grace period
    await gate.tick()
    await gate.app[store_key].update_config({"mode": "queue"})
    await gate.tick()
    for _ in range(3):
        clock.advance(1)
        await gate.tick()
    assert [(await status(gate, t))[1]["state"] for t in tickets] == ["admitted"] * 3


async def test_the_rate_is_spent_on_present_visitors_across_processes(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    a, b = await make_gate(), await make_gate()
    await a.app[store_key].update_config({"mode": "paused"})
    tickets = [str((await join(a if i % 2 else b))["ticket"]) for i in range(200)]
    present = [t for i, t in enumerate(tickets) if i % 10 >= 3]  # 30 % leave
    for _ in range(24):  # 480 s: longer than 1.5 x the 300 s grace period
        clock.advance(20)
        await poll_all(a, present[::2])
        await poll_all(b, present[1::2])
        await a.tick()
        await b.tick()
    await a.app[store_key].update_config({"mode": "queue"})
    await a.tick()
    for _ in range(120):  # one minute at 60 per minute, both processes ticking
        clock.advance(0.5)
        await a.tick()
        await b.tick()
    snapshot = b.app[room_view_key].snapshot
    assert snapshot is not None
    assert snapshot.admitted == 60
    # The first 87 numbers hold the first 60 who stayed and 27 who left (3 of every 10).
    assert snapshot.skipped == 27


# --- one place per visitor ----------------------------------------------------------------


async def test_ten_tabs_one_place(gate: Gate, redis_client: Redis) -> None:
    first = await gate.client.get("/queue/wait")
    token = first.cookies[TICKET_COOKIE].value
    for _ in range(10):
        gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: token})
        tab = await gate.client.get("/queue/wait")
        assert TICKET_COOKIE not in tab.cookies
        assert 'id="position">1<' in await tab.text()
        gate.client.session.cookie_jar.update_cookies({TICKET_COOKIE: token})
        api = await gate.client.post("/queue/api/join")
        assert api.status == 200
    assert await redis_client.hget("qg:{default}:state", "seq") == "1"


async def test_a_pass_used_from_many_browsers_is_limited(gate: Gate, clock: FakeClock) -> None:
    ticket = str((await join(gate))["ticket"])
    clock.advance(1)
    await gate.tick()
    token = (await status(gate, ticket))[1]["pass"]
    gate.client.session.cookie_jar.clear()

    async def use(agent: str) -> int:
        response = await gate.client.get("/book", headers={
            PASS_HEADER: str(token), "User-Agent": agent, "Accept": "application/json"})
        return response.status

    assert [await use(f"browser {i}") for i in range(4)] == [200] * 4
    assert await use("browser 5") == 401
    assert await use("browser 0") == 200  # the first browsers keep working


async def test_join_limit_per_address(make_gate: GateFactory) -> None:
    gate = await make_gate(join_limit=3)
    for _ in range(3):
        await join(gate)
    api = await gate.client.post("/queue/api/join")
    assert api.status == 429
    body = await api.json()
    assert body["error"] == "too_many_joins"
    assert int(api.headers["Retry-After"]) > 0
    page = await gate.client.get("/queue/wait?lang=en")
    assert page.status == 429
    assert "Care homes can ask us" in await page.text()


async def test_trusted_networks_are_not_limited(make_gate: GateFactory) -> None:
    gate = await make_gate(join_limit=2, trusted_networks=("127.0.0.0/8",))
    for _ in range(5):
        await join(gate)


async def test_behind_a_trusted_proxy_each_client_counts_alone(make_gate: GateFactory) -> None:
    gate = await make_gate(join_limit=2, trusted_proxies=("127.0.0.1/32",))
    for client in ("203.0.113.7", "203.0.113.8"):
        for _ in range(2):
            gate.client.session.cookie_jar.clear()
            ok = await gate.client.post("/queue/api/join",
                                        headers={"X-Forwarded-For": f"198.51.100.1, {client}"})
            assert ok.status == 201
    gate.client.session.cookie_jar.clear()
    # A forged first entry does not help: the address our proxy saw is the one counted.
    limited = await gate.client.post("/queue/api/join",
                                     headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})
    assert limited.status == 429


# --- active sessions ---------------------------------------------------------------------


async def test_session_cap_pauses_admissions_until_sessions_end(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=600)
    await gate.app[store_key].update_config({"max_active": 2})
    tickets = [str((await join(gate))["ticket"]) for _ in range(6)]
    for _ in range(4):
        clock.advance(0.5)
        await gate.tick()
    states = [(await status(gate, t))[1]["state"] for t in tickets]
    assert states.count("admitted") == 2
    # The first visitor finishes booking: the backend ends the session.
    first_pass = (await status(gate, tickets[0]))[1]["pass"]
    gate.client.session.cookie_jar.clear()
    done = await gate.client.get("/done", headers={PASS_HEADER: str(first_pass)})
    assert done.status == 200
    for _ in range(2):
        clock.advance(0.5)
        await gate.tick()
    code, ended = await status(gate, tickets[0])
    assert (code, ended["error"]) == (401, "session_ended")
    states = [(await status(gate, t))[1]["state"] for t in tickets[1:]]
    assert states == ["admitted", "admitted", "waiting", "waiting", "waiting"]
    clock.advance(15 * 60)  # the other two sessions expire
    for _ in range(4):
        clock.advance(0.5)
        await gate.tick()
    states = [(await status(gate, t))[1]["state"] for t in tickets[3:]]
    assert states == ["admitted", "admitted", "waiting"]


async def test_an_opening_time_with_a_fraction_of_a_second(
    admin: Client, gate: Gate, clock: FakeClock
) -> None:
    await gate.tick()
    opening = dt.datetime.fromtimestamp(clock.now + 600.817, dt.UTC)
    response = await admin.patch("/admin/rooms/default", headers=auth(),
                                 json={"opens_at": opening.isoformat()})
    assert response.status == 200
    # Whole seconds, rounded up: the room never opens early.
    assert (await response.json())["opens_at"] == iso(clock.now + 601)
    await gate.tick()
    ticket = await join(gate)
    assert ticket["state"] == "prequeue"
    clock.advance(601)
    await gate.tick()
    code, body = await status(gate, ticket["ticket"])
    assert (code, body["state"]) == (200, "admitted")  # drawn first, and let in at once


async def test_presence_is_sent_once_per_bucket_however_often_one_polls(
    gate: Gate, clock: FakeClock, redis_client: Redis
) -> None:
    tickets = [str((await join(gate))["ticket"]) for _ in range(3)]
    await gate.app[store_key].update_config({"mode": "paused"})
    await gate.tick()

    async def setbits() -> int:
        stats = await redis_client.info("commandstats")
        return int(stats.get("cmdstat_setbit", {}).get("calls", 0))

    before = await setbits()
    for _ in range(20):  # joining marked them already in this bucket
        await poll_all(gate, tickets)
        clock.advance(1)
        await gate.tick()
    assert await setbits() - before == 0
    clock.advance(150)  # the next presence bucket: each is marked once more
    await gate.tick()
    for _ in range(5):
        await poll_all(gate, tickets)
        await gate.tick()
    assert await setbits() - before == 3


async def test_a_cap_not_reached_does_not_slow_admissions(
    make_gate: GateFactory, clock: FakeClock
) -> None:
    gate = await make_gate(initial_rate_per_minute=60, abandon_grace_s=0)
    await gate.app[store_key].update_config({"max_active": 500})
    for _ in range(100):
        await join(gate)
    await gate.tick()
    for _ in range(240):  # one minute of quarter-second ticks: under one admission each
        clock.advance(0.25)
        await gate.tick()
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None
    assert snapshot.admitted == 60
