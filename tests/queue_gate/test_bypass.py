"""QUEUE_GATE_BYPASS_PATHS: what a citizen needs after the booking ended their session (the
confirmation, managing the booking, static files) reaches the backend without a pass and
without a Redis round trip; everything else still needs one."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from queue_gate.settings import DEMO_BYPASS_PATHS, Settings
from tests.queue_gate.conftest import ADMIN_TOKEN, SECRET, FakeClock, GateFactory
from tests.queue_gate.test_proxy import admit
from tests.raw_http import raw_request
from vaccine_queue.config import SettingsError

BYPASS = ("/manage", "/confirmation", "/static/")


async def commands(client: Redis) -> int:
    return int((await client.info("stats"))["total_commands_processed"])


@pytest.mark.parametrize("path", ["/manage", "/manage/cancel", "/confirmation",
                                  "/confirmation/calendar.ics?lang=en", "/static/booking.css"])
async def test_bypass_paths_are_proxied_without_a_pass_or_redis(
        make_gate: GateFactory, redis_url: str, path: str) -> None:
    gate = await make_gate(bypass_paths=BYPASS)
    counter = Redis.from_url(redis_url)
    before = await commands(counter)
    for method in ("GET", "POST"):
        async with gate.client.request(method, path, allow_redirects=False,
                                       headers={"Accept": "text/html"}) as resp:
            assert resp.status in (200, 201), (method, resp.status)
            body = await resp.json()
            assert body["method"] == method and body["path"] == path.split("?")[0]
    # Only the first INFO itself: no pass check, no join, nothing else.
    assert await commands(counter) - before == 1
    await counter.aclose()


@pytest.mark.parametrize("path", ["/", "/managed", "/manager/x", "/appointments",
                                  "/manage/../appointments", "/manage/%2e%2e/appointments",
                                  "/manage/%2E%2E%2Fappointments", "/manage/./../details",
                                  "/static", "//manage", "/static//x"])
async def test_other_paths_still_need_a_pass(make_gate: GateFactory, path: str) -> None:
    gate = await make_gate(bypass_paths=BYPASS)
    # Sent raw, exactly as written: aiohttp's client would resolve the dot segments.
    response = await raw_request(gate.client.port, "GET", path, [("Accept", b"text/html")])
    assert response.status == 303, (path, response)
    assert response.headers["location"].startswith("/queue/wait")


async def test_without_the_setting_nothing_bypasses(make_gate: GateFactory) -> None:
    gate = await make_gate()
    async with gate.client.get("/manage", allow_redirects=False,
                               headers={"Accept": "text/html"}) as resp:
        assert resp.status == 303


async def test_an_ended_session_still_reaches_manage(make_gate: GateFactory,
                                                     clock: FakeClock) -> None:
    """The booking ends the pass (the backend's end-session header); the confirmation and
    managing the booking are still reached, the booking pages are not."""
    gate = await make_gate(bypass_paths=BYPASS)
    await admit(gate, clock)
    async with gate.client.get("/done") as resp:
        assert await resp.text() == "booked"
    async with gate.client.get("/appointments", allow_redirects=False,
                               headers={"Accept": "text/html"}) as resp:
        assert resp.status == 303
    for path in ("/confirmation", "/manage"):
        async with gate.client.get(path, allow_redirects=False,
                                   headers={"Accept": "text/html"}) as resp:
            assert resp.status == 200, path


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"QUEUE_GATE_SECRETS": SECRET, "QUEUE_GATE_ADMIN_TOKEN": ADMIN_TOKEN}
    settings = Settings.from_env({**base, "QUEUE_GATE_BYPASS_PATHS": "/manage, /confirmation"})
    assert settings.bypass_paths == ("/manage", "/confirmation")
    # Unset: what the booking backend serves without a pass; "none": nothing.
    assert Settings.from_env(base).bypass_paths == ("/confirmation", "/manage", "/static")
    assert Settings.from_env({**base, "QUEUE_GATE_BYPASS_PATHS": "none"}).bypass_paths == ()
    assert Settings.from_env({"QUEUE_GATE_DEMO": "1"}).bypass_paths == DEMO_BYPASS_PATHS
    for bad in ("/", "manage", "/queue", "/queue/api", "/a/../b", "/a b", "/x?y"):
        with pytest.raises(SettingsError, match="QUEUE_GATE_BYPASS_PATHS"):
            Settings.from_env({**base, "QUEUE_GATE_BYPASS_PATHS": bad})
