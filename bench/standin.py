"""A bench-only stand-in in front of the booking backend whose capacity the benchmark sets.

An HTTP reverse proxy (aiohttp) that serves at most `slots` requests at once and holds each
slot at least `service_ms` (so its capacity is slots / service time, whatever the real
backend behind it could do), and puts the backend's capacity hint on every answer as the
real backend computes it (`booking_backend.capacity.Capacity`), with the stand-in's free
slots as the pool (`--hint backend`: the real backend's own hint, passed through).
`bench.adaptive` moves it through phases on its control port:

- `healthy`: `slots` slots;
- `half`: half of them (capacity halves; requests wait for a slot, latency grows);
- `hang`: nothing is answered and nothing forwarded, connections stay open (a stopped
  process: SIGSTOP); requests waiting or in flight are answered when it ends, late;
- `crash`: the port is closed and open connections are cut (a crashed process); it listens
  again when the phase ends.

Every answered request is recorded (arrival unix time, latency in seconds, status, path):
`GET /records` on the control port. `python -m bench.standin --port P --control-port C
--backend URL --slots 6 --service-ms 200`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from booking_backend.capacity import Capacity
from devtools.processes import HOST
from queue_gate.proxy import HOP_BY_HOP
from vaccine_queue.contract import CAPACITY_HEADER, CAPACITY_PATH

log = logging.getLogger(__name__)

Phase = Literal["healthy", "half", "hang", "crash"]
PHASES: tuple[Phase, ...] = ("healthy", "half", "hang", "crash")


class Slots:
    """A semaphore whose limit can change while requests wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used < self.limit)
            self.used += 1

    async def release(self) -> None:
        async with self._changed:
            self.used -= 1
            self._changed.notify_all()

    async def set_limit(self, limit: int) -> None:
        async with self._changed:
            self.limit = limit
            self._changed.notify_all()

    def free_share(self) -> float:
        return max(self.limit - self.used, 0) / self.limit if self.limit else 0.0


class StandIn:
    """The proxy's state: phase, slots, the backend session and the records."""

    def __init__(self, backend: str, slots: int, service_s: float, host: str,
                 port: int, own_hint: bool = True) -> None:
        self.backend = backend.rstrip("/")
        self.own_hint = own_hint
        self.full = slots
        self.service_s = service_s
        self.host = host
        self.port = port
        self.slots = Slots(slots)
        self.capacity = Capacity()
        self.phase: Phase = "healthy"
        self.answering = asyncio.Event()
        self.answering.set()
        self.records: list[tuple[float, float, int, str]] = []
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None

    async def listen(self) -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self.relay)
        # No grace for requests in flight when the crash closes the port: they are cut.
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port, reuse_address=True).start()

    async def set_phase(self, phase: Phase) -> None:
        previous, self.phase = self.phase, phase
        await self.slots.set_limit(max(self.full // 2, 1) if phase == "half" else self.full)
        if phase in ("hang", "crash"):
            self.answering.clear()
        if phase == "crash" and self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if phase not in ("hang", "crash"):
            if previous == "crash":
                await self.listen()
            self.answering.set()
        log.info("phase %s -> %s", previous, phase)

    async def relay(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        started = time.perf_counter()
        await self.answering.wait()
        if request.path == CAPACITY_PATH and self.own_hint:  # the probe: cheap, no slot
            return web.Response(status=204, headers={
                CAPACITY_HEADER: str(self.capacity.hint(self.slots.free_share()))})
        body = await request.read()
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("host", "content-length"))
        await self.slots.acquire()
        try:
            held = time.perf_counter()
            assert self.session is not None
            async with self.session.request(request.method,
                                            self.backend + request.rel_url.raw_path_qs,
                                            headers=headers, data=body or None,
                                            allow_redirects=False) as upstream:
                payload = await upstream.read()
                status = upstream.status
                answer = CIMultiDict(
                    (k, v) for k, v in upstream.headers.items()
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length")
            rest = self.service_s - (time.perf_counter() - held)
            if rest > 0:
                await asyncio.sleep(rest)
        finally:
            await self.slots.release()
        # A stopped process answers nothing, also what it had begun: wait for the end.
        await self.answering.wait()
        latency = time.perf_counter() - started
        self.capacity.observe(latency)
        if self.own_hint:
            answer[CAPACITY_HEADER] = str(self.capacity.hint(self.slots.free_share()))
        self.records.append((round(arrived, 3), round(latency, 4), status, request.path))
        return web.Response(status=status, body=payload, headers=answer)


def control_app(standin: StandIn) -> web.Application:
    async def put_phase(request: web.Request) -> web.Response:
        phase = request.match_info["phase"]
        if phase not in PHASES:
            return web.json_response({"error": f"phase must be one of {PHASES}"}, status=400)
        await standin.set_phase(phase)  # narrowed to a Phase by the check above
        return web.json_response({"phase": standin.phase, "slots": standin.slots.limit})

    async def get_records(_request: web.Request) -> web.Response:
        return web.json_response({"records": standin.records})

    app = web.Application()
    app.router.add_put("/phase/{phase}", put_phase)
    app.router.add_get("/records", get_records)
    return app


async def serve(args: argparse.Namespace) -> None:
    standin = StandIn(args.backend, args.slots, args.service_ms / 1000, HOST, args.port,
                      own_hint=args.hint == "slots")
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar()) as session:
        standin.session = session
        await standin.listen()
        control = web.AppRunner(control_app(standin), access_log=None)
        await control.setup()
        await web.TCPSite(control, HOST, args.control_port).start()
        try:
            await asyncio.Event().wait()  # until SIGTERM
        finally:
            await control.cleanup()
            if standin.runner is not None:
                await standin.runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--slots", type=int, default=6)
    parser.add_argument("--service-ms", type=float, default=200.0)
    parser.add_argument("--hint", choices=("slots", "backend"), default="slots",
                        help="capacity hint from the stand-in's slots or the backend's own")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
