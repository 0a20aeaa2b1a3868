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


async def test_error_answers_come_from_one_table(env: Env) -> None:
    """Each operation names its error statuses; each refers to the one shared description of
    that status (the problem object, and Retry-After where the server sends it)."""
    _, document = await env.api("GET", "/api/v1/openapi.json")
    components = document["components"]["responses"]
    used = set()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert response == {"$ref": f"#/components/responses/Error{status}"}, (
                        method, path, status)
                    used.add(f"Error{status}")
            if "requestBody" in op:  # every call with a JSON body refuses what is not JSON
                assert {"400", "413", "415", "422"} <= set(op["responses"]), (method, path)
            if op.get("security") != []:
                assert "403" in op["responses"], (method, path)
    assert used == set(components)
    assert "Retry-After" in components["Error503"]["headers"]
    problem = document["components"]["schemas"]["Problem"]
    assert problem["required"] == ["error", "message"]
