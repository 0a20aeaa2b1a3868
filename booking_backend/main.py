"""Application factories and the `booking-backend` entry point.

`create_app` builds the citizens' app (pages and JSON API, every request needs a gate pass);
`create_admin_app` builds the operators' app for a separate port. Both can share one
`Backend` (pass `public_app=`), so metrics and the database pool are shared in one process.
`booking-backend migrate` applies the schema migrations and exits; `booking-backend purge
[--dry-run]` removes the personal data whose time is up (BOOKING_RETENTION_DAYS) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CollectorRegistry

from booking_backend import admin, api, keys, retention, sessions, views
from booking_backend.api import is_api
from booking_backend.backend import Backend
from booking_backend.capacity import Capacity, capacity_middleware
from booking_backend.db import Database, StoreUnavailable
from booking_backend.levels import read_levels
from booking_backend.metrics import Metrics
from booking_backend.migrations import migrate
from booking_backend.protection import pass_middleware
from booking_backend.settings import Settings
from booking_backend.verification import Sender
from vaccine_queue.config import SettingsError
from vaccine_queue.i18n import language_middleware
from vaccine_queue.pages import (
    PARSER_LIMITS,
    Handler,
    Pages,
    Problem,
    error_middleware,
    limits_middleware,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
ADMIN_MAX_BODY = 32 * 1024 * 1024
# Our own files only: no inline script or style anywhere on the pages.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)
STORE_RETRY_AFTER_S = 30


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path, status, bytes, seconds. No client address and no
    query string (a postcode, say): no personal data in the logs."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            time: float) -> None:
        self.logger.info('"%s %s" %s %s %.6f', request.method, request.path,
                         response.status, response.body_length, time)


def route_label(request: web.Request) -> str:
    """The matched route's canonical path (`/api/v1/holds/{id}`), `unmatched` without one
    (404, 405): never the raw path, so the label keeps a small fixed set of values."""
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[keys.metrics_key]
    surface = "api" if is_api(request) else "web"
    route = route_label(request)
    started = time.perf_counter()
    status = 500
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.in_flight.dec()
        metrics.requests.labels(surface=surface, route=route, status=f"{status // 100}xx").inc()
        metrics.request_duration.labels(surface=surface, route=route).observe(
            time.perf_counter() - started)


def _install(app: web.Application, backend: Backend) -> None:
    app[keys.backend_key] = backend
    app[keys.settings_key] = backend.settings
    app[keys.metrics_key] = backend.metrics
    app[keys.db_key] = backend.db
    app[keys.catalogue_key] = backend.catalogue
    app[keys.service_key] = backend.service
    app[keys.pass_codec_key] = backend.pass_codec
    app[keys.csrf_key] = backend.csrf


def pages(settings: Settings) -> Pages:
    """The booking theme: an operator's folder first, times in the deployment's zone."""
    return Pages("booking", override_dir=settings.template_dir, timezone=settings.timezone,
                 globals={"settings": settings, "site": settings.site},
                 content_security_policy=CONTENT_SECURITY_POLICY)


def store_trouble(metrics: Metrics) -> Callable[[web.Request, Exception], Problem | None]:
    """The database being away (or too busy for the pool's timeout) becomes a 503 asking
    people to try again shortly, with Retry-After, counted."""

    def convert(request: web.Request, exc: Exception) -> Problem | None:
        if not isinstance(exc, StoreUnavailable):
            return None
        log.warning("store unavailable for %s %s: %s", request.method, request.path, exc)
        metrics.store_errors.inc()
        return Problem("store_unavailable", 503, retry_after=STORE_RETRY_AFTER_S)

    return convert


async def backend_ctx(app: web.Application) -> AsyncIterator[None]:
    """The database pool (and the webhook client) first, so the tasks below stop before
    they close."""
    backend = app[keys.backend_key]
    await backend.open()
    yield
    await backend.close()


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox worker and the hold sweeper, stopped before the pool closes."""
    backend = app[keys.backend_key]
    stop = asyncio.Event()
    if backend.settings.outbox_worker:
        app[keys.outbox_task_key] = asyncio.create_task(backend.outbox.run_forever(stop))
    app[keys.sweeper_task_key] = asyncio.create_task(sweep_forever(backend, stop))
    yield
    # Race: a cancellation that lands inside a database call can be absorbed by the client
    # library; the stop flag makes the loop end at its next check all the same.
    stop.set()
    for key in (keys.sweeper_task_key, keys.outbox_task_key):
        task = app.get(key)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def sweep_forever(backend: Backend, stop: asyncio.Event) -> None:
    """Return the units of expired holds even when nobody books (a hold whose pair is gone
    also does it), count codes that expired unused, forget old sessions and the details of
    ended holds, and keep the gauges
    fresh. Each expiry is counted in the transaction that makes it, so several sweeping
    processes count each one once."""
    while not stop.is_set():
        try:
            await backend.inventory.sweep()
            await backend.verifier.expire_codes()
            await sessions.forget_expired(backend.db, int(backend.clock()))
            await backend.inventory.forget_ended()
            backend.metrics.observe(await read_levels(backend.db), backend.clock())
        except StoreUnavailable as exc:
            log.warning("sweeper: store unavailable: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backend.settings.sweep_seconds)


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None,
    registry: CollectorRegistry | None = None, sender: Sender | None = None,
    backend: Backend | None = None,
) -> web.Application:
    """The citizens' app. Raises `SettingsError` for unsafe settings (e.g. no secrets
    outside demo/dev, or passes switched off without demo/dev)."""
    settings = settings or (backend.settings if backend else Settings())
    for warning in settings.check_startable(own_sender=sender is not None):
        log.warning("%s", warning)
    backend = backend or Backend(settings, clock=clock, registry=registry, sender=sender)
    site = pages(settings)
    app = web.Application(
        middlewares=[
            capacity_middleware,
            metrics_middleware,
            error_middleware(site, is_api=is_api, convert=store_trouble(backend.metrics)),
            limits_middleware(max_body_bytes=settings.max_body_bytes),
            language_middleware(secure_cookies=settings.cookie_secure),
            pass_middleware,
        ],
        client_max_size=settings.max_body_bytes,
        handler_args=PARSER_LIMITS,
    )
    _install(app, backend)
    app[keys.pages_key] = site
    app[keys.capacity_key] = Capacity()
    app.cleanup_ctx.append(backend_ctx)
    app.cleanup_ctx.append(background_ctx)
    views.setup_routes(app)
    api.setup_routes(app)
    return app


def create_admin_app(
    settings: Settings | None = None, *, public_app: web.Application | None = None,
    clock: Clock | None = None, registry: CollectorRegistry | None = None,
    backend: Backend | None = None,
) -> web.Application:
    """The operators' app (separate port). With `public_app`, it shares that app's backend."""
    if backend is None and public_app is not None:
        backend = public_app[keys.backend_key]
    if backend is None:
        settings = settings or Settings()
        settings.check_startable()
        backend = Backend(settings, clock=clock, registry=registry)
    app = web.Application(middlewares=[admin.admin_middleware], client_max_size=ADMIN_MAX_BODY)
    _install(app, backend)
    app.cleanup_ctx.append(backend_ctx)
    admin.setup_routes(app)
    return app


async def serve(settings: Settings, host: str, port: int, admin_host: str,
                admin_port: int) -> None:
    public = create_app(settings)
    admin_app = create_admin_app(public_app=public)
    runners = [web.AppRunner(public, access_log_class=AccessLogger),
               web.AppRunner(admin_app, access_log_class=AccessLogger)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for runner, (h, p) in zip(runners, ((host, port), (admin_host, admin_port)), strict=True):
            await runner.setup()
            await web.TCPSite(runner, h, p).start()
            log.info("listening on http://%s:%d", h, p)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def purge(settings: Settings, *, dry_run: bool) -> dict[str, int]:
    """One purge run against the database, from a shell, cron or a systemd timer."""
    db = Database(settings.database_url, size=1,
                  acquire_timeout=settings.database_acquire_timeout,
                  statement_timeout=max(settings.database_statement_timeout, 300.0))
    await db.open()
    try:
        return await retention.purge(db, int(time.time()), settings.retention_days,
                                     dry_run=dry_run)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Vaccination booking backend")
    parser.add_argument("command", nargs="?", default="serve",
                        choices=("serve", "migrate", "purge"),
                        help="serve (default), migrate: apply the schema migrations, or"
                        " purge: remove personal data past BOOKING_RETENTION_DAYS")
    parser.add_argument("--dry-run", action="store_true",
                        help="purge: only count what would be removed")
    parser.add_argument("--host", default="127.0.0.1", help="public app host")
    parser.add_argument("--port", type=int, default=8082, help="public app port")
    parser.add_argument("--admin-host", default="127.0.0.1", help="admin app host")
    parser.add_argument("--admin-port", type=int, default=8083, help="admin app port")
    parser.add_argument("--migrate", action="store_true",
                        help="apply the schema migrations before serving")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        if args.command == "migrate" or args.migrate:
            applied = asyncio.run(migrate(settings.database_url))
            log.info("migrations applied: %s", ", ".join(applied) or "none, up to date")
            if args.command == "migrate":
                return
        if args.command == "purge":
            counts = asyncio.run(purge(settings, dry_run=args.dry_run))
            log.info("purge%s (%d days): %s", " dry run" if args.dry_run else "",
                     settings.retention_days,
                     ", ".join(f"{name} {n}" for name, n in counts.items()))
            return
        settings.check_startable()
    except SettingsError as exc:
        parser.exit(2, f"booking-backend: {exc}\n")
    except StoreUnavailable as exc:
        parser.exit(1, f"booking-backend: database unavailable: {exc}\n")
    asyncio.run(serve(settings, args.host, args.port, args.admin_host, args.admin_port))


if __name__ == "__main__":
    main()
