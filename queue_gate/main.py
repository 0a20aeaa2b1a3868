"""The gate's app factory and its command line: `queue-gate` / `python -m queue_gate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry

from queue_gate import admission
from queue_gate.addresses import AddressPolicy
from queue_gate.admin import create_admin_app
from queue_gate.admission import RoomView
from queue_gate.errors import error_middleware
from queue_gate.keys import (
    address_policy_key,
    backend_session_key,
    clock_key,
    control_redis_key,
    metrics_key,
    pages_key,
    room_view_key,
    settings_key,
    signer_key,
    store_key,
    ticker_key,
)
from queue_gate.metrics import GateMetrics
from queue_gate.pages import Pages
from queue_gate.proxy import backend_session
from queue_gate.routes import setup_routes
from queue_gate.settings import Settings, SettingsError
from queue_gate.store import Clock, GateUnavailable, RoomStore, connect
from queue_gate.tickets import TicketSigner

log = logging.getLogger(__name__)

VISITOR_POOL = 64
CONTROL_POOL = 4


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    run_ticker: bool = True,
) -> web.Application:
    """The public gate app. `clock` replaces Redis TIME and time.time (tests only);
    `run_ticker=False` leaves ticking to the caller (tests call `RoomView.refresh`)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024**2)
    app[settings_key] = settings
    app[clock_key] = clock or time.time
    app[metrics_key] = GateMetrics(registry or CollectorRegistry())
    app[pages_key] = Pages(settings.template_dir)
    app[address_policy_key] = AddressPolicy.from_settings(settings)
    app[signer_key] = TicketSigner(settings.secrets, settings.room,
                                   ticket_max_age_s=settings.ticket_max_age_s,
                                   clock=app[clock_key])

    # Order matters: Redis first, then the backend client, then the ticker, so the ticker
    # stops before Redis closes.
    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        # Two clients: visitors' requests share a large pool and give up after a second
        # (they get "busy, retry"); the ticker and the admin API have a small pool of their
        # own, so admission and operators keep working when a rush has drained the first.
        visitors = connect(settings.redis_url, max_connections=VISITOR_POOL, wait_s=1.0)
        control = connect(settings.redis_url, max_connections=CONTROL_POOL, wait_s=5.0)
        app[control_redis_key] = control
        app[store_key] = RoomStore(visitors, settings, clock=clock)
        ticker_store = RoomStore(control, settings, clock=clock)
        app[room_view_key] = RoomView(ticker_store, settings, app[metrics_key])
        yield
        await visitors.aclose()
        await control.aclose()

    async def backend_ctx(app: web.Application) -> AsyncIterator[None]:
        session = backend_session(settings.backend_max_connections, settings.backend_timeout_s)
        app[backend_session_key] = session
        yield
        await session.close()

    async def ticker_ctx(app: web.Application) -> AsyncIterator[None]:
        view = app[room_view_key]
        try:
            await view.refresh()
            await view.store.register_room()
        except GateUnavailable as exc:
            # Start anyway: visitors get the busy page until Redis answers.
            log.error("room %s: Redis not reachable at start (%s); retrying", settings.room, exc)
        if not run_ticker:
            yield
            return
        async with admission.running(view) as task:
            app[ticker_key] = task
            yield

    app.cleanup_ctx.extend([redis_ctx, backend_ctx, ticker_ctx])
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
        log.info("queue gate for room %r on http://%s:%d/, admin on http://%s:%d/, backend %s",
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
    asyncio.run(serve(settings, args.host, args.port, args.admin_host, args.admin_port))
