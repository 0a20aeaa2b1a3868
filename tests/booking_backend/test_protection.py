"""Only admitted visitors get in; unsafe settings refuse to start."""

from __future__ import annotations

import dataclasses
import logging

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from booking_backend.main import AccessLogger, create_app
from booking_backend.settings import Settings
from devtools.processes import free_port
from tests.booking_backend.conftest import Env, MakeEnv
from vaccine_queue.config import SettingsError
from vaccine_queue.contract import PASS_COOKIE, PASS_HEADER, AdmissionPass, PassCodec


async def test_page_without_pass_points_back_to_the_queue(env: Env) -> None:
    async with env.client.get("/appointments") as resp:
        assert resp.status == 403
        page = await resp.text()
    assert 'href="/queue/wait?next=/appointments"' in page
    assert "Warteschlange" in page


async def test_api_without_pass_is_json_403(env: Env) -> None:
    async with env.client.post("/api/v1/eligibility", json={}) as resp:
        assert resp.status == 403
        body = await resp.json()
    assert body["error"] == "pass_missing"
    assert body["queue"] == "/queue/wait?next=/api/v1/eligibility"


async def test_forged_foreign_and_expired_passes_are_refused(env: Env) -> None:
    forged = PassCodec(("another-secret",)).sign(AdmissionPass("main", "t", 2**40))
    expired = env.pass_token("t", expires=env.clock() - 1)
    for token, reason in ((forged, "pass_invalid"), (expired, "pass_expired"),
                          ("garbage", "pass_invalid")):
        async with env.client.get("/api/v1/groups", headers={PASS_HEADER: token}) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"] == reason
    value = env.backend.metrics.registry.get_sample_value(
        "booking_pass_rejections_total", {"reason": "pass_invalid"})
    assert value == 2


async def test_pass_in_cookie_or_header_is_accepted(env: Env) -> None:
    async with env.client.get("/api/v1/groups", headers=env.headers()) as resp:
        assert resp.status == 200
    env.client.session.cookie_jar.update_cookies({PASS_COOKIE: env.pass_token()})
    async with env.client.get("/") as resp:
        assert resp.status == 200


async def test_room_restriction(make_env: MakeEnv) -> None:
    env = await make_env(pass_room="other-room")
    async with env.client.get("/api/v1/groups", headers=env.headers()) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"] == "pass_foreign"


async def test_pass_check_off_only_in_dev_or_demo(base_settings: Settings) -> None:
    with pytest.raises(SettingsError, match="development only"):
        create_app(dataclasses.replace(base_settings, require_pass=False))
    create_app(dataclasses.replace(base_settings, require_pass=False, dev=True))


async def test_refuses_to_start_without_secrets(base_settings: Settings) -> None:
    with pytest.raises(SettingsError, match="QUEUE_GATE_SECRETS"):
        create_app(dataclasses.replace(base_settings, secrets=()))
    create_app(dataclasses.replace(base_settings, secrets=(), demo=True))


async def test_dev_mode_without_pass_works(make_env: MakeEnv) -> None:
    env = await make_env(require_pass=False, dev=True)
    async with env.client.get("/api/v1/groups") as resp:
        assert resp.status == 200


async def test_database_down_gives_a_friendly_503(make_env: MakeEnv) -> None:
    from devtools.processes import free_port

    env = await make_env(catalogue=False,
                         database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    async with env.client.get("/", headers=env.headers()) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "30"
        assert "Bitte versuchen Sie es in einer Minute noch einmal" in await resp.text()
    status, body = await env.api("POST", "/api/v1/eligibility",
                                 json={"birth_date": "1.1.1930", "postcode": "38100"})
    assert (status, body["error"]) == (503, "store_unavailable")
    async with env.admin.get("/healthz") as resp:
        assert resp.status == 503


async def test_access_log_has_no_query_string_nor_address(
    base_settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    """As `booking-backend` serves: through AccessLogger."""
    app = create_app(dataclasses.replace(base_settings, dev=True), registry=CollectorRegistry())
    runner = web.AppRunner(app, access_log_class=AccessLogger)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        caplog.set_level(logging.INFO, logger="aiohttp.access")
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/api/v1/centres?postcode=38100") as resp:
            await resp.read()
    finally:
        await runner.cleanup()
    assert '"GET /api/v1/centres"' in caplog.text
    assert "38100" not in caplog.text and "127.0.0.1" not in caplog.text
