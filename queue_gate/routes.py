"""The public routes: the gate's own pages under /queue/, everything else to the backend."""

from __future__ import annotations

from aiohttp import web

from queue_gate import proxy, views


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/queue/api/join", views.api_join)
    app.router.add_get("/queue/api/status", views.api_status)
    app.router.add_get("/queue/wait", views.waiting_page)
    app.router.add_get("/queue/healthz", views.health)
    # Anything else under /queue/ is ours and does not exist; it must not reach the backend.
    app.router.add_route("*", "/queue/{tail:.*}", not_found)
    app.router.add_route("*", "/{tail:.*}", proxy.forward)


async def not_found(request: web.Request) -> web.Response:
    allowed = {
        route.method
        for route in request.app.router.routes()
        if route.resource is not None and route.resource.canonical == request.path
    }
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
