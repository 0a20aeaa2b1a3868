"""The OpenAPI document names exactly the API routes the app serves."""

from __future__ import annotations

from aiohttp import web

from tests.booking_backend.conftest import Env
from vaccine_queue.contract import PASS_COOKIE, PASS_HEADER


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/") and route.method != "HEAD":
            routes.add((route.method.lower(), path))
    return routes


async def test_document_matches_router(env: Env) -> None:
    status, document = await env.api("GET", "/api/v1/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.")
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    app = env.client.app
    assert app is not None
    assert documented == api_routes(app)
    assert len(documented) == 15
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (method, path)
            if "{hold_id}" in path:
                assert any(p["name"] == "hold_id" for p in op["parameters"])
    # The pass as the contract names it, the same one the backend checks.
    schemes = document["components"]["securitySchemes"]
    assert (schemes["queuePassCookie"]["name"], schemes["queuePassHeader"]["name"]) == (
        PASS_COOKIE, PASS_HEADER)


async def test_document_needs_no_pass(env: Env) -> None:
    async with env.client.get("/api/v1/openapi.json") as resp:
        assert resp.status == 200
