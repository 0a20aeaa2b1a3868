"""The gate's app factory and its command line: `queue-gate` / `python -m queue_gate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry

from queue_gate import durability, health, notify
from queue_gate.addresses import AddressPolicy
from queue_gate.admin import create_admin_app
from queue_gate.keys import (
    address_policy_key,
    backend_health_key,
    backend_session_key,
    clock_key,
    control_redis_key,
    health_reporter_key,
    health_task_key,
    metrics_key,
    pages_key,
    room_view_key,
    rooms_key,
    run_notifier_key,
    settings_key,
    store_key,
    ticker_key,
)
from queue_gate.metrics import GateMetrics
from queue_gate.proxy import UpstreamBroken, backend_session
from queue_gate.responses import is_api
from queue_gate.rooms import Rooms
from queue_gate.routes import setup_routes
from queue_gate.settings import Settings
from queue_gate.store import Clock, GateUnavailable, connect
from vaccine_queue.config import SettingsError
from vaccine_queue.i18n import language_middleware
from vaccine_queue.pages import (
    PARSER_LIMITS,
    Pages,
    Problem,
    error_middleware,
    limits_middleware,
)

log = logging.getLogger(__name__)

VISITOR_POOL = 64
CONTROL_POOL = 4
# Seconds a visitor is asked to wait when Redis is away (the busy page tries again then).
BUSY_RETRY_S = 5
# The gate's own words where the shared ones would be wrong for someone in line.
MESSAGE_KEYS = {"internal_error": "gate.internal_error"}
# The largest body the gate takes (and forwards): the booking forms are small.
MAX_BODY_BYTES = 1024**2


def redis_trouble(metrics: GateMetrics, room: str) -> Callable[[web.Request, Exception],
                                                                Problem | None]:
    """Redis being away becomes a 503 asking to try again in a few seconds, counted: a page
    that does so by itself for browsers, JSON with Retry-After for apps."""

    def convert(request: web.Request, exc: Exception) -> Problem | None:
        if not isinstance(exc, GateUnavailable):
            return None
        metrics.redis_errors.labels(room, "request").inc()
        log.warning("Redis unavailable while serving %s: %s", request.path, exc)
        return Problem("busy", 503, retry_after=BUSY_RETRY_S,
                       message_key=None if is_api(request) else "gate.busy")

    return convert


def pages(settings: Settings) -> Pages:
    """The gate's theme: an operator's folder first, times in the deployment's zone."""
    return Pages("gate", override_dir=settings.template_dir, timezone=settings.timezone,
                 globals={"site": settings.site})


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    run_ticker: bool = True,
) -> web.Application:
    """The public gate app. `clock` replaces Redis TIME and time.time (tests only);
    `run_ticker=False` leaves ticking to the caller (tests call `RoomView.refresh`)."""
    metrics = GateMetrics(registry or CollectorRegistry())
    site = pages(settings)
    app = web.Application(
        middlewares=[
            error_middleware(site, is_api=is_api, convert=redis_trouble(metrics, settings.room),
                             passthrough=(UpstreamBroken,), message_keys=MESSAGE_KEYS),
            limits_middleware(max_body_bytes=MAX_BODY_BYTES),
            language_middleware(secure_cookies=settings.cookie_secure),
        ],
        client_max_size=MAX_BODY_BYTES,
        handler_args=PARSER_LIMITS,
    )
    app[settings_key] = settings
    app[clock_key] = clock or time.time
    app[metrics_key] = metrics
    app[pages_key] = site
    app[address_policy_key] = AddressPolicy.from_settings(settings)

    # Order matters: Redis first (and whether it keeps data), then the backend client, then
    # the ticker, so the ticker stops before Redis closes.
    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        # Two clients, shared by every room: visitors' requests share a large pool and give
        # up after a second (they get "busy, retry"); the ticker and the admin API have a
        # small pool of their own, so admission and operators keep working when a rush has
        # drained the first.
        visitors = connect(settings, max_connections=VISITOR_POOL, wait_s=1.0)
        control = connect(settings, max_connections=CONTROL_POOL, wait_s=5.0)
        app[control_redis_key] = control.client
        # Each room's visitor path (arrival -> line -> pass) on the shared clients.
        rooms = app[rooms_key] = Rooms(settings, visitors=visitors.client,
                                       control=control.client, metrics=metrics,
                                       policy=app[address_policy_key], clock=clock,
                                       now=app[clock_key])
        app[store_key] = rooms.first.store
        app[room_view_key] = rooms.first.view
        yield
        await rooms.aclose()
        await visitors.aclose()
        await control.aclose()

    async def durability_ctx(app: web.Application) -> AsyncIterator[None]:
        # Before the room is touched: a gate that must not run on a Redis that forgets
        # stops here, having created nothing.
        try:
            durable: bool | None = durability.report(
                settings.room, await durability.check(app[control_redis_key]))
        except GateUnavailable as exc:
            log.error("room %s: could not ask Redis whether it keeps data (%s)",
                      settings.room, exc)
            durable = None
        if durable is not None:
            metrics.redis_durable.labels(settings.room).set(int(durable))
        if settings.require_durable_redis and not durable:
            raise durability.RedisNotDurable(
                "QUEUE_GATE_REQUIRE_DURABLE_REDIS is set and Redis "
                + ("could not be asked whether it keeps data" if durable is None else
                   "has neither persistence (appendonly, RDB) nor a replica"))
        yield

    async def backend_ctx(app: web.Application) -> AsyncIterator[None]:
        # The connector's limit leaves room for the health probe beyond the visitors'
        # bound, which BackendHealth keeps (waiting for a connection at most
        # backend_pool_wait_s).
        session = backend_session(settings.backend_max_connections + health.PROBE_CONNECTIONS,
                                  settings.backend_timeout_s)
        app[backend_session_key] = session
        app[backend_health_key] = health.BackendHealth(settings)
        yield
        await session.close()

    async def ticker_ctx(app: web.Application) -> AsyncIterator[None]:
        rooms = app[rooms_key]
        view = rooms.first.view
        try:
            await view.refresh()
            await view.store.register_room()
            await rooms.refresh()  # every other room of the registry, before the first request
        except GateUnavailable as exc:
            # Start anyway: visitors get the busy page until Redis answers.
            log.error("room %s: Redis not reachable at start (%s); retrying", settings.room, exc)
        # Tests without the ticker call the reporter's `report` themselves.
        # One verdict on the backend per window, for every room in adaptive mode.
        reporter = app[health_reporter_key] = health.HealthReporter(
            app[backend_health_key], view.store, settings, metrics, app[backend_session_key],
            lambda: view.snapshot,
            others=lambda: [(room.view.store, room.view.snapshot) for room in rooms
                            if room is not rooms.first])
        if not run_ticker:
            yield
            return
        async with rooms.running() as task, health.reporting(reporter) as reporting:
            app[ticker_key] = task
            app[health_task_key] = reporting
            yield

    app[run_notifier_key] = run_ticker
    app.cleanup_ctx.extend([redis_ctx, durability_ctx, backend_ctx, ticker_ctx,
                            notify.notify_ctx])
    setup_routes(app)
    return app


async def until_stopped() -> None:
    """Wait for SIGTERM (a container stopping) or SIGINT (Ctrl-C), then return so that the
    caller's cleanup runs: runners close, the ticker stops, Redis disconnects."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def serve(settings: Settings, host: str, port: int, admin_host: str,
                admin_port: int) -> None:
    """Run the public and the admin app until cancelled."""
    gate = create_app(settings)
    admin = create_admin_app(gate)
    runners = [web.AppRunner(gate, access_log=None), web.AppRunner(admin, access_log=None)]
    try:
        for runner in runners:
            await runner.setup()
        await web.TCPSite(runners[0], host, port, backlog=4096).start()
        await web.TCPSite(runners[1], admin_host, admin_port).start()
        log.info("queue gate (first room %r) on http://%s:%d/, admin on http://%s:%d/, backend %s",
                 settings.room, host, port, admin_host, admin_port, settings.backend_url)
        await until_stopped()
        log.info("stopping")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="queue-gate", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0", help="public address (default 0.0.0.0)")  # noqa: S104
    parser.add_argument("--port", type=int, default=8080, help="public port (default 8080)")
    parser.add_argument("--admin-host", default="127.0.0.1",
                        help="admin address; keep it private (default 127.0.0.1)")
    parser.add_argument("--admin-port", type=int, default=8081, help="admin port (default 8081)")
    parser.add_argument("--demo", action="store_true",
                        help="generate secrets and admin token if none are set "
                        "(never in production)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    env = {**os.environ, "QUEUE_GATE_DEMO": "1"} if args.demo else None
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        sys.exit(f"queue-gate: {exc}")
    if settings.demo:
        log.warning("DEMO MODE: secrets and admin token are generated for this run only; "
                    "admin token: %s", settings.admin_token)
    try:
        asyncio.run(serve(settings, args.host, args.port, args.admin_host, args.admin_port))
    except durability.RedisNotDurable as exc:
        sys.exit(f"queue-gate: {exc}")
