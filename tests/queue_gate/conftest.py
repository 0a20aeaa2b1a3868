"""Gate fixtures: real gate apps on a private Redis, a real echo backend, a fake clock."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from queue_gate.admin import create_admin_app
from queue_gate.keys import room_view_key
from queue_gate.main import create_app
from queue_gate.settings import Settings

SECRET = "test-secret-0123456789"
ADMIN_TOKEN = "test-admin-token"


class FakeClock:
    """Seconds since the epoch that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Gate:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    registry: CollectorRegistry

    async def tick(self) -> None:
        await self.app[room_view_key].refresh()


GateFactory = Callable[..., Awaitable[Gate]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def echo(request: web.Request) -> web.StreamResponse:
    """The stand-in booking backend: tells what it received."""
    if request.path == "/stream":
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for i in range(64):
            await response.write(bytes([i]) * 16384)
        await response.write_eof()
        return response
    if request.path == "/done":
        return web.Response(text="booked", headers={"X-Queue-End-Session": "1"})
    if request.path == "/redirect":
        raise web.HTTPFound("/elsewhere")
    if request.path.startswith("/status/"):
        return web.Response(status=int(request.path.rsplit("/", 1)[1]), text="as asked")
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": dict(request.headers),
            "body": body.decode("utf-8", "replace"),
            "body_length": len(body),
        },
        status=201 if request.method == "POST" else 200,
        headers={"X-Backend": "yes", "Set-Cookie": "backend=1; Path=/"},
    )


@pytest.fixture
async def backend(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_route("*", "/{tail:.*}", echo)
    return await aiohttp_server(app)


def gate_settings(redis_url: str, backend_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "backend_url": backend_url,
        "secrets": (SECRET,),
        "admin_token": ADMIN_TOKEN,
        "cookie_secure": False,
        "initial_rate_per_minute": 60,
        # Every test visitor comes from 127.0.0.1; the limit has tests of its own.
        "join_limit": 0,
        # Likewise the pre-queue's draws per address (tests/queue_gate/test_challenge.py).
        "draw_limit": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def make_gate(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    redis_url: str,
    backend: TestServer,
    clock: FakeClock,
) -> GateFactory:
    """Start a gate app (ticker off: tests tick) on the shared private Redis."""

    async def factory(**overrides: object) -> Gate:
        url = str(overrides.pop("redis_url", redis_url))
        backend_url = str(overrides.pop("backend_url", backend.make_url("/")))
        settings = gate_settings(url, backend_url, **overrides)
        registry = CollectorRegistry()
        app = create_app(settings, clock=clock, registry=registry, run_ticker=False)
        client = await aiohttp_client(app)
        return Gate(client, app, registry)

    return factory


@pytest.fixture
async def gate(make_gate: GateFactory) -> Gate:
    return await make_gate()


@pytest.fixture
async def admin(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    gate: Gate,
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(create_admin_app(gate.app))


def auth(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def join(gate: Gate) -> dict[str, object]:
    """Join through the API as a fresh visitor (no cookies kept)."""
    gate.client.session.cookie_jar.clear()
    response = await gate.client.post("/queue/api/join")
    assert response.status == 201, await response.text()
    body: dict[str, object] = json.loads(await response.text())
    gate.client.session.cookie_jar.clear()
    return body


async def status(gate: Gate, ticket: object) -> tuple[int, dict[str, object]]:
    gate.client.session.cookie_jar.clear()
    response = await gate.client.get(
        "/queue/api/status", headers={"Authorization": f"Bearer {ticket}"})
    body: dict[str, object] = json.loads(await response.text())
    gate.client.session.cookie_jar.clear()
    return response.status, body
