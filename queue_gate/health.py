"""How the booking backend is doing, as one gate process sees it, for adaptive admission.

Every proxied request passes through `BackendHealth`: it bounds the wait for a backend
connection (`slot`), and records what came back, how long it took and the backend's
capacity hint (`CAPACITY_HEADER`). Once a second the `HealthReporter` turns the last
second into a verdict (`classify`) and sends it to Redis (`RoomStore.report_health`),
where lua/health-3.lua combines every process's verdicts into the one effective rate of
the room (the controller is described there and in docs/architecture.md). While no
visitor's request shows whether the backend lives (none answered in the last window: the
room is paused, or the backend hangs), the reporter probes `CAPACITY_PATH` with a short
timeout, so a dead backend is noticed and a recovered one too.

A hang (connections accepted, nothing answered) is told from the requests still in flight,
not only from those that ended: when the oldest has waited longer than the latency target
and nothing at all has answered for as long, the backend is taken for silent at once (as a
refused request is), checked every HANG_CHECK_S, without waiting for the window's end or a
probe's timeout. A backend answering slowly keeps answering something: under load, answers
come many times a second, so this fires on silence, not on slowness.

The verdicts, per process and window:
- dead: something was asked and nothing answered (refused, reset, timed out, the probe
  failed), and nothing did answer;
- trouble: answers came, but slowly (p95 over the latency target), with failures (5xx,
  timeouts, a wait for a connection over its bound), with the connection bound nearly
  used up, or with a low capacity hint (the median of the window's);
- ok: answers came, quickly and well;
- idle: nothing was asked (only the probe, which answered with enough capacity).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

from queue_gate.metrics import GateMetrics
from queue_gate.settings import Settings
from queue_gate.store import GateUnavailable, HealthDecision, RoomStore, TickResult
from vaccine_queue.background import background
from vaccine_queue.contract import CAPACITY_HEADER, CAPACITY_PATH

log = logging.getLogger(__name__)

Verdict = Literal["ok", "trouble", "dead", "idle"]

# Each process reports one verdict per window; a dead backend is reported at once.
REPORT_EVERY_S = 1.0
# The probe gives up after this long: a backend that needs more is as good as dead.
PROBE_TIMEOUT_S = 1.0
# Trouble: at least this share of requests failed (and at least FAILED_AT_LEAST of them) ...
FAILED_SHARE = 0.05
FAILED_AT_LEAST = 2
# ... or this share of the connection bound was in use at once ...
BUSY_SHARE = 0.8
# ... or the backend's capacity hint (0..1) fell below this: for most of the window's
# answers (the median) practically nothing was free. Not 0.2: with a pool of 6 that is
# one connection free, what a backend shows at the 80 % use operators choose as its healthy
# rate (bench.adaptive: at 360/min, p99 400 ms, the rate was cut again and again and never
# held rate_max); slowness has its own rule (p95 over the latency target).
CAPACITY_LOW = 0.1
# Connections kept for the probe beyond the visitors' bound: it must not queue behind them.
PROBE_CONNECTIONS = 2
# How often the reporter looks at the requests in flight for a hang.
HANG_CHECK_S = 0.1


class BackendBusy(Exception):
    """No backend connection came free within the bound: the visitor gets a 503."""


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One process's window: the verdict and what it rests on."""

    verdict: Verdict
    requests: int = 0
    failed: int = 0
    p95_s: float | None = None
    busy: float = 0.0
    capacity: float | None = None
    # Wall-clock times (unix seconds) of this process's newest answer and newest request
    # that got none, 0 for never: the room compares them across processes.
    last_answer: float = 0.0
    last_no_answer: float = 0.0


@dataclass(slots=True)
class _Window:
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    no_answer: int = 0
    answered: int = 0
    peak_in_flight: int = 0
    capacities: list[float] = field(default_factory=list)
    hangs: int = 0  # hangs seen from the requests in flight (`BackendHealth.check_hang`)


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def parse_capacity(value: str | None) -> float | None:
    """The hint as a number from 0 to 1, or None for a missing or unreadable one."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return min(max(number, 0.0), 1.0) if math.isfinite(number) else None


def typical_capacity(window: _Window) -> float | None:
    """The window's median hint. Not its lowest: a backend kept busy near its capacity
    shows a moment without a free connection almost every second, and judging by those
    halved a healthy rate again and again (bench.adaptive: 204 admitted per minute where
    fixed admitted 360 with the backend's p99 at 451 ms)."""
    return statistics.median(window.capacities) if window.capacities else None


def classify(window: _Window, limit: int, latency_target_s: float) -> Verdict:
    """The verdict on one window (see the module's docstring)."""
    if window.no_answer and not window.answered:
        return "dead"
    capacity = typical_capacity(window)
    requests = len(window.latencies) + window.failed
    if capacity is not None and capacity < CAPACITY_LOW:
        return "trouble"
    if window.peak_in_flight >= BUSY_SHARE * limit:
        return "trouble"
    if window.failed >= FAILED_AT_LEAST and window.failed >= FAILED_SHARE * requests:
        return "trouble"
    slowest = p95(window.latencies)
    if slowest is not None and slowest > latency_target_s:
        return "trouble"
    return "ok" if requests else "idle"


class Call:
    """One proxied request: the proxy says what became of it."""

    __slots__ = ("_done", "_health", "_key", "_started")

    def __init__(self, health: BackendHealth, key: int, started: float) -> None:
        self._health = health
        self._key = key
        self._started = started
        self._done = False

    def answered(self, status: int, capacity: str | None) -> None:
        """Response headers arrived (`status`, the capacity header's value)."""
        if self._done:
            return
        self._done = True
        # Answered: a long body streamed after this is no request waiting for an answer.
        self._health.answered_in_flight(self._key)
        self._health.record_answer(time.perf_counter() - self._started, status >= 500,
                                   parse_capacity(capacity))

    def no_answer(self) -> None:
        """Refused, cut or timed out before any response headers."""
        if self._done:
            return
        self._done = True
        self._health.record_no_answer()


class BackendHealth:
    """This process's view of the backend: the connection bound and the current window."""

    def __init__(self, settings: Settings, *, wall_clock: Callable[[], float] = time.time
                 ) -> None:
        self.limit = settings.backend_max_connections
        self.pool_wait_s = settings.backend_pool_wait_s
        self.latency_target_s = settings.backend_latency_target_s
        self._slots = asyncio.Semaphore(self.limit)
        self._wall_clock = wall_clock
        self.in_flight = 0
        # When each call in flight began (perf_counter), oldest first (dicts keep order).
        self._since: dict[int, float] = {}
        self._calls = 0
        # perf_counter of the newest answer (or of the start), and whether the silence
        # since then was already reported as a hang (once per silence).
        self._answered_at = time.perf_counter()
        self._hang_reported = False
        self._window = _Window()
        self.last_answer = 0.0
        self.last_no_answer = 0.0
        # Set when a request got no answer: the reporter tells the room at once.
        self.urgent = asyncio.Event()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Call]:
        """A backend connection, waited for up to `pool_wait_s`; raises `BackendBusy`.

        A request that leaves without saying what happened (the visitor went away) counts
        for nothing."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.pool_wait_s)
        except TimeoutError:
            self._window.failed += 1
            raise BackendBusy() from None
        self.in_flight += 1
        self._window.peak_in_flight = max(self._window.peak_in_flight, self.in_flight)
        self._calls += 1
        key, started = self._calls, time.perf_counter()
        self._since[key] = started
        call = Call(self, key, started)
        try:
            yield call
        finally:
            self._since.pop(key, None)
            self.in_flight -= 1
            self._slots.release()

    def answered_in_flight(self, key: int) -> None:
        self._since.pop(key, None)

    def check_hang(self) -> bool:
        """Whether the backend hangs: the oldest request in flight without an answer has
        waited longer than the latency target and nothing answered for as long. Recorded
        (once per silence) as a request without an answer, so the room hears of it at once."""
        if self._hang_reported or not self._since:
            return False
        now = time.perf_counter()
        oldest = next(iter(self._since.values()))
        bound = self.latency_target_s
        if now - oldest < bound or now - self._answered_at < bound:
            return False
        self._hang_reported = True
        self._window.hangs += 1
        self.record_no_answer(probe=True)  # not a failed request: it may still be answered
        return True

    def _heard(self) -> None:
        self._answered_at = time.perf_counter()
        self._hang_reported = False

    def record_answer(self, seconds: float, failed: bool, capacity: float | None) -> None:
        window = self._window
        window.answered += 1
        self.last_answer = self._wall_clock()
        self._heard()
        if failed:
            window.failed += 1
        else:
            window.latencies.append(seconds)
        if capacity is not None:
            window.capacities.append(capacity)

    def record_no_answer(self, *, probe: bool = False) -> None:
        self._window.no_answer += 1
        if not probe:  # a failed probe says dead, not "a request failed"
            self._window.failed += 1
        self.last_no_answer = self._wall_clock()
        self.urgent.set()

    def needs_probe(self) -> bool:
        """Nothing answered in this window: only a probe can tell dead from idle (unless a
        hang was seen in it: a probe would only hang too)."""
        return self._window.answered == 0 and not self._window.hangs

    def take_sample(self) -> HealthSample:
        """The verdict on the window so far; a new window begins."""
        window, self._window = self._window, _Window(peak_in_flight=self.in_flight)
        self.urgent.clear()
        return HealthSample(
            verdict=classify(window, self.limit, self.latency_target_s),
            requests=len(window.latencies) + window.failed,
            failed=window.failed,
            p95_s=p95(window.latencies),
            busy=window.peak_in_flight / self.limit,
            capacity=typical_capacity(window),
            last_answer=self.last_answer,
            last_no_answer=self.last_no_answer,
        )

    async def probe(self, session: aiohttp.ClientSession, backend_url: str) -> None:
        """HEAD the backend's capacity path with a short timeout; record what came back
        (its capacity hint, not its latency: a probe is not a visitor's request)."""
        url = backend_url.rstrip("/") + CAPACITY_PATH
        try:
            async with session.head(url, timeout=aiohttp.ClientTimeout(
                    total=PROBE_TIMEOUT_S), allow_redirects=False) as response:
                capacity = parse_capacity(response.headers.get(CAPACITY_HEADER))
        except (TimeoutError, aiohttp.ClientError):
            self.record_no_answer(probe=True)
            return
        self._window.answered += 1
        self.last_answer = self._wall_clock()
        self._heard()
        if capacity is not None:
            self._window.capacities.append(capacity)


# The other rooms a process serves, as (store, snapshot) now (queue_gate/rooms.py).
OtherRooms = Callable[[], Sequence[tuple[RoomStore, TickResult | None]]]


def _adaptive(snapshot: TickResult | None) -> bool:
    return snapshot is not None and snapshot.config.rate_mode == "adaptive"


class HealthReporter:
    """Sends this process's verdict to the room once a window (at once when a request got
    no answer) while the room is in adaptive mode, probing the backend when needed. The
    backend is one for every room of the process: the same verdict goes to each of the
    `others` rooms that is in adaptive mode too."""

    def __init__(self, health: BackendHealth, store: RoomStore, settings: Settings,
                 metrics: GateMetrics, session: aiohttp.ClientSession,
                 snapshot: Callable[[], TickResult | None],
                 others: OtherRooms = lambda: ()) -> None:
        self.health = health
        self.store = store
        self._settings = settings
        self._metrics = metrics
        self._session = session
        self._snapshot = snapshot
        self._others = others
        self.last: HealthDecision | None = None
        self._last_of: dict[str, HealthDecision] = {}

    def adaptive(self) -> bool:
        return _adaptive(self._snapshot())

    async def report(self) -> HealthDecision | None:
        """Probe if needed, then send the window's verdict to every adaptive room; the
        decision of this reporter's own room (None in fixed mode)."""
        stores = [store for store, snapshot in self._others() if _adaptive(snapshot)]
        if self.adaptive():
            stores.insert(0, self.store)
        if not stores:
            self.health.take_sample()  # the window still starts afresh
            return None
        if self.health.needs_probe():
            await self.health.probe(self._session, self._settings.backend_url)
        sample = self.health.take_sample()
        own: HealthDecision | None = None
        for store in stores:
            room = store.room
            self._metrics.backend_verdicts.labels(room, sample.verdict).inc()
            if sample.capacity is not None:
                self._metrics.backend_capacity.labels(room).set(sample.capacity)
            decision = await store.report_health(sample.verdict, sample.last_answer,
                                                 sample.last_no_answer)
            last = self._last_of.get(room)
            if last is not None and decision.backend != last.backend:
                log.warning("room %s: booking backend %s; effective rate %.1f/min", room,
                            "answers again" if decision.backend == "up"
                            else "answers nothing", decision.effective_rate)
            self._last_of[room] = decision
            if store is self.store:
                own = self.last = decision
        return own

    async def _until_due(self) -> None:
        """Until the window ends, a request got no answer or the backend hangs."""
        deadline = time.monotonic() + REPORT_EVERY_S
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.health.urgent.wait(), min(left, HANG_CHECK_S))
            if self.health.urgent.is_set() or self.health.check_hang():
                return

    async def run(self) -> None:
        while True:
            await self._until_due()
            try:
                await self.report()
            except GateUnavailable as exc:
                self._metrics.redis_errors.labels(self.store.room, "health").inc()
                log.warning("room %s: health report failed: %s", self.store.room, exc)
                await asyncio.sleep(REPORT_EVERY_S)


def reporting(reporter: HealthReporter,
              ) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """Run the reporter as a background task; cancel it on exit."""
    return background(reporter.run(), f"health-reporter-{reporter.store.room}")
