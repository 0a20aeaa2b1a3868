"""Proof of work at the door and the draw limit, on a real gate and a private Redis: the API's
428 flow solved for real, a challenge used once, expired and wrong solutions refused with a
readable answer, the checking page's form and its no-JavaScript waited token, and one
address's draws of the opening lottery capped at the configured limit."""

from __future__ import annotations

import html
import json
import re

from aiohttp.test_utils import TestServer

from queue_gate.challenge import CHALLENGE_TTL_S, meets, solve
from queue_gate.keys import room_view_key, store_key
from tests.queue_gate.conftest import FakeClock, Gate, GateFactory, auth

BITS = 8  # cheap for tests; the default difficulty's cost is measured in bench/pow.py
HTML = {"Accept": "text/html"}


async def ask_for_work(gate: Gate, bits: int = BITS) -> None:
    await gate.app[store_key].update_config({"challenge_bits": bits})
    await gate.tick()


async def refused(gate: Gate, body: object = None) -> tuple[int, dict[str, object]]:
    gate.client.session.cookie_jar.clear()
    response = await gate.client.post("/queue/api/join",
                                      data=None if body is None else json.dumps(body))
    return response.status, json.loads(await response.text())


def solution(challenge: object) -> dict[str, str]:
    assert isinstance(challenge, dict)
    assert challenge["algorithm"] == "sha256"
    nonce = solve(str(challenge["prefix"]), int(challenge["bits"]))
    return {"challenge": str(challenge["token"]), "nonce": nonce}


async def test_an_app_is_asked_for_work_then_joins_with_its_solution(gate: Gate) -> None:
    await ask_for_work(gate)
    status, body = await refused(gate)
    assert status == 428
    assert body["error"] == "challenge_required" and body["message"]
    challenge = body["challenge"]
    assert isinstance(challenge, dict) and challenge["bits"] == BITS
    assert set(challenge) == {"token", "algorithm", "prefix", "bits"}

    answer = solution(challenge)
    status, joined = await refused(gate, answer)
    assert status == 201, joined
    assert joined["ticket"] and joined["state"] == "waiting"

    # Accepted once: the same solution again is refused, with a fresh challenge to solve.
    status, again = await refused(gate, answer)
    assert status == 428 and again["error"] == "challenge_used"
    assert isinstance(again["challenge"], dict)
    assert again["challenge"]["token"] != answer["challenge"]


async def test_expired_wrong_and_forged_solutions_are_refused(gate: Gate,
                                                              clock: FakeClock) -> None:
    await ask_for_work(gate)
    _, body = await refused(gate)
    challenge = body["challenge"]
    assert isinstance(challenge, dict)
    answer = solution(challenge)
    wrong = next(str(n) for n in range(1000)
                 if not meets(str(challenge["prefix"]), str(n), BITS))
    status, failed = await refused(gate, {**answer, "nonce": wrong})
    assert (status, failed["error"]) == (428, "challenge_failed")

    forged = answer["challenge"][:-2] + ("AA" if not answer["challenge"].endswith("AA") else "BB")
    for bad in ({**answer, "challenge": forged}, {**answer, "challenge": 7},
                {**answer, "challenge": "x" * 5000}):
        status, invalid = await refused(gate, bad)
        assert (status, invalid["error"]) == (428, "challenge_invalid"), bad
    status, typed = await refused(gate, {**answer, "nonce": 12})
    assert (status, typed["error"]) == (428, "challenge_failed")
    status, partial = await refused(gate, {"nonce": "1"})
    assert (status, partial["error"]) == (428, "challenge_invalid")

    clock.advance(CHALLENGE_TTL_S + 1)
    status, expired = await refused(gate, answer)
    assert (status, expired["error"]) == (428, "challenge_expired")


async def test_a_join_body_that_is_not_an_object_is_a_400(gate: Gate) -> None:
    await ask_for_work(gate)
    for raw in ("not json", "[1, 2]", '"text"', "\xff"):
        gate.client.session.cookie_jar.clear()
        response = await gate.client.post("/queue/api/join", data=raw.encode("latin-1"))
        body = await response.json()
        assert (response.status, body["error"]) == (400, "invalid_join_body"), raw


async def test_a_raised_difficulty_refuses_easier_solutions(gate: Gate) -> None:
    await ask_for_work(gate, 4)
    _, body = await refused(gate)
    answer = solution(body["challenge"])
    await ask_for_work(gate, 6)
    status, outdated = await refused(gate, answer)
    assert status == 428 and outdated["error"] == "challenge_invalid"
    assert isinstance(outdated["challenge"], dict) and outdated["challenge"]["bits"] == 6


async def test_without_a_challenge_joins_are_unchanged(gate: Gate) -> None:
    status, joined = await refused(gate)
    assert status == 201 and joined["ticket"]
    status, joined = await refused(gate, {"challenge": "anything", "nonce": "1"})
    assert status == 201


async def test_the_admin_sets_and_bounds_the_difficulty(gate: Gate, admin: object) -> None:
    from aiohttp.test_utils import TestClient
    assert isinstance(admin, TestClient)
    changed = await admin.patch("/admin/rooms/default", headers=auth(),
                                json={"challenge_bits": 18})
    assert changed.status == 200
    assert (await changed.json())["challenge_bits"] == 18
    for bad in (29, -1, "18", 1.5, True):
        response = await admin.patch("/admin/rooms/default", headers=auth(),
                                     json={"challenge_bits": bad})
        assert response.status == 422, bad


def page_values(text: str) -> dict[str, str]:
    """The checking page's challenge, form target and the no-JavaScript refresh."""
    challenge = json.loads(html.unescape(
        re.search(r"var challenge = (\{.*?\});", text).group(1)))  # type: ignore[union-attr]
    refresh = re.search(r'http-equiv="refresh" content="(\d+);url=([^"]+)"', text)
    action = re.search(r'<form method="post" action="([^"]+)"', text)
    assert refresh is not None and action is not None
    return {"token": challenge["token"], "prefix": challenge["prefix"],
            "bits": str(challenge["bits"]), "wait_s": refresh.group(1),
            "waited_url": html.unescape(refresh.group(2)),
            "action": html.unescape(action.group(1))}


async def test_a_browser_posts_its_solution_and_is_sent_to_its_place(gate: Gate) -> None:
    await ask_for_work(gate)
    page = await gate.client.get("/queue/wait?next=/book", headers=HTML)
    assert page.status == 200
    text = await page.text()
    assert "pow-form" in text and "qg_ticket" not in page.headers.get("Set-Cookie", "")
    values = page_values(text)
    assert values["action"] == "/queue/wait?next=/book"

    nonce = solve(values["prefix"], int(values["bits"]))
    joined = await gate.client.post(values["action"], data={"challenge": values["token"],
                                                            "nonce": nonce},
                                    headers=HTML, allow_redirects=False)
    assert joined.status == 303
    assert joined.headers["Location"] == "/queue/wait?next=/book"
    waiting = await gate.client.get("/queue/wait?next=/book", headers=HTML)
    assert waiting.status == 200 and 'id="position"' in await waiting.text()

    # The same solution from a fresh browser: the checking page again, saying why.
    gate.client.session.cookie_jar.clear()
    again = await gate.client.post(values["action"], data={"challenge": values["token"],
                                                           "nonce": nonce},
                                   headers={**HTML, "Accept-Language": "en"},
                                   allow_redirects=False)
    assert again.status == 428
    assert "already been used" in await again.text()
    gate.client.session.cookie_jar.clear()
    empty = await gate.client.post(values["action"], data={}, headers=HTML,
                                   allow_redirects=False)
    assert empty.status == 428 and "pow-form" in await empty.text()


async def test_without_javascript_waiting_replaces_the_work(gate: Gate,
                                                            clock: FakeClock) -> None:
    await ask_for_work(gate)
    values = page_values(await (await gate.client.get("/queue/wait", headers=HTML)).text())
    wait_s = int(values["wait_s"])
    assert wait_s == gate.app[store_key]._settings.challenge_wait_s

    early = await gate.client.get(values["waited_url"], headers=HTML)
    assert early.status == 200
    assert page_values(await early.text())["waited_url"] == values["waited_url"]
    clock.advance(wait_s)
    joined = await gate.client.get(values["waited_url"], headers=HTML)
    assert joined.status == 200 and 'id="position"' in await joined.text()
    assert "qg_ticket" in joined.headers.get("Set-Cookie", "")

    gate.client.session.cookie_jar.clear()
    reused = await gate.client.get(values["waited_url"], headers=HTML)
    assert reused.status == 428 and "pow-form" in await reused.text()
    clock.advance(CHALLENGE_TTL_S + 1)
    late = await gate.client.get(values["waited_url"], headers=HTML)
    assert late.status == 428
    forged = await gate.client.get("/queue/wait?waited=nonsense", headers=HTML)
    assert forged.status == 428


async def test_one_address_holds_at_most_the_draw_limit(make_gate: GateFactory,
                                                        clock: FakeClock) -> None:
    gate = await make_gate(draw_limit=3)
    await gate.app[store_key].update_config({"opens_at": clock.now + 600})
    await gate.tick()
    held = 0
    for _ in range(6):
        status, body = await refused(gate)
        if status == 201:
            assert body["state"] == "prequeue"
            held += 1
        else:
            assert (status, body["error"]) == (429, "too_many_draws")
    assert held == 3
    page = await gate.client.get("/queue/wait", headers={**HTML, "Accept-Language": "en"})
    assert page.status == 429 and "draw at opening" in await page.text()
    assert 1 <= int(page.headers["Retry-After"]) <= 600

    # After the opening the address joins the line like anyone else (join limit apart).
    clock.advance(601)
    await gate.tick()
    status, body = await refused(gate)
    assert status == 201 and body["state"] == "waiting"
    # A new opening counts anew.
    await gate.app[store_key].update_config({"opens_at": clock.now + 600})
    await gate.tick()
    assert (await refused(gate))[0] == 201


async def test_the_difficulty_rises_with_the_join_rate_room_wide(
        make_gate: GateFactory, clock: FakeClock) -> None:
    """challenge_bits 4, up to 7, rising above 60 joins a minute: one bit per doubling,
    measured over 10 s of room time from the room's join counter, the same for every gate
    process, shown by the admin API; back down when the rush passes."""
    from aiohttp.test_utils import TestClient

    from queue_gate.admin import create_admin_app
    from queue_gate.keys import rooms_key

    one, two = await make_gate(), await make_gate()
    await one.tick()
    admin = TestClient(TestServer(create_admin_app(two.app)))
    await admin.start_server()
    try:
        changed = await admin.patch("/admin/rooms/default", headers=auth(), json={
            "challenge_bits": 4, "challenge_bits_max": 7, "challenge_join_rate": 60})
        assert changed.status == 200
        shown = await changed.json()
        assert (shown["challenge_bits"], shown["challenge_bits_max"],
                shown["challenge_join_rate"], shown["challenge_bits_now"]) == (4, 7, 60, 4)
        await one.tick()  # the other process applies it at its next tick

        async def rush(joins: int) -> None:
            """`joins` visitors join (each solving what it is asked) within 10 s."""
            for i in range(joins):
                gate = (one, two)[i % 2]
                _, body = await refused(gate)
                status, _ = await refused(gate, solution(body["challenge"]))
                assert status == 201
            clock.advance(10)
            await one.tick()
            await two.tick()

        await rush(30)  # 180 a minute: 3 x 60, two doublings (or part of one) above it
        for gate in (one, two):
            _, body = await refused(gate)
            assert body["challenge"]["bits"] == 6  # type: ignore[index]
        shown = await (await admin.get("/admin/rooms/default", headers=auth())).json()
        assert (shown["challenge_bits_now"], shown["join_rate_per_minute"]) == (6, 180)

        # A solution issued one bit below the difficulty now is taken (its visitor solved
        # while it rose), two bits below is not; neither ever below challenge_bits.
        issuer = one.app[rooms_key].first.arrival.challenges
        status, _ = await refused(one, solution(issuer.issue(5).as_json()))
        assert status == 201
        status, body = await refused(one, solution(issuer.issue(4).as_json()))
        assert (status, body["error"]) == (428, "challenge_invalid")

        await rush(120)  # 720 a minute: capped at challenge_bits_max
        assert one.app[room_view_key].snapshot.challenge_bits_now == 7  # type: ignore[union-attr]
        await rush(0)  # quiet again: the operators' difficulty
        _, body = await refused(two)
        assert body["challenge"]["bits"] == 4  # type: ignore[index]
    finally:
        await admin.close()


async def test_the_admin_bounds_the_rising_difficulty(gate: Gate, admin: object) -> None:
    from aiohttp.test_utils import TestClient
    assert isinstance(admin, TestClient)
    for bad in ({"challenge_bits_max": 29}, {"challenge_bits_max": -1},
                {"challenge_join_rate": -5}, {"challenge_join_rate": "60"},
                {"challenge_join_rate": 1.5}):
        response = await admin.patch("/admin/rooms/default", headers=auth(), json=bad)
        assert response.status == 422, bad
        assert (await response.json())["error"] == "invalid_change"
