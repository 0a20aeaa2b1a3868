"""The admission ticker and each process's view of its room.

Every gate process runs one `RoomView`. A few times a second it calls the room's tick
script, which advances the admission frontier by the configured rate (Redis decides how
much, so many processes admit no more than one) and returns the room's state. Status polls
answer from that local snapshot: a poll costs no Redis round trip, only the visitor whose
turn has come makes one, to collect their pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from queue_gate.metrics import GateMetrics
from queue_gate.settings import Settings
from queue_gate.store import GateUnavailable, RoomStore, TickResult

log = logging.getLogger(__name__)

# The measured rate needs this much uninterrupted backlog before it replaces the setting.
MEASURE_MIN_S = 10.0
MEASURE_WINDOW_S = 60.0
# A snapshot older than this means Redis is not answering: health checks say so.
STALE_AFTER_S = 5.0
POLL_JITTER = 0.2


@dataclass(frozen=True, slots=True)
class Estimate:
    position: int
    wait_s: float | None
    poll_after_s: float


class RoomView:
    """One process's picture of the room, refreshed by `run` or by `refresh` in tests."""

    def __init__(
        self,
        store: RoomStore,
        settings: Settings,
        metrics: GateMetrics,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self._settings = settings
        self._metrics = metrics
        self._rng = rng or random.Random()
        self.snapshot: TickResult | None = None
        self._fetched_at = 0.0
        # (redis time, frontier) while the queue had a backlog under one configuration.
        self._samples: deque[tuple[float, int]] = deque()
        # Numbers whose visitors polled since the last tick: marked present by the next one.
        self._seen: set[int] = set()
        # Numbers already sent for the current presence bucket, one bit each: a visitor polls
        # every 2 to 120 s but needs marking once per bucket (half the grace period).
        self._marked = bytearray()
        self._marked_bucket = -1
        self._lock = asyncio.Lock()

    def mark_seen(self, number: int) -> None:
        """Remember that ticket `number` is still there; sent to Redis with the next tick
        unless it was sent already in this presence bucket."""
        grace = self._settings.abandon_grace_s
        if not grace:
            return
        if self.snapshot is not None:
            bucket = int(self.snapshot.now // (grace / 2))
            if bucket != self._marked_bucket:
                self._marked = bytearray()
                self._marked_bucket = bucket
            byte, bit = divmod(number, 8)
            if byte >= len(self._marked):
                self._marked.extend(bytes(byte + 4096 - len(self._marked)))
            elif self._marked[byte] >> bit & 1:
                return
            self._marked[byte] |= 1 << bit
        self._seen.add(number)

    async def refresh(self) -> TickResult:
        """Tick once (serialised: one tick at a time per process)."""
        async with self._lock:
            seen, self._seen = self._seen, set()
            try:
                result = await self.store.tick(sorted(seen))
            except GateUnavailable:
                self._seen |= seen  # try again with the next tick
                raise
            self._record(result)
            return result

    def _record(self, result: TickResult) -> None:
        previous = self.snapshot
        if result.reseeded_at is not None and (
                previous is None or previous.reseeded_at != result.reseeded_at):
            if previous is not None:
                log.warning("room %s: Redis lost the room; re-created from a gate's last "
                            "snapshot (epoch %s, line from %d)", self.store.room,
                            result.epoch, result.seq)
            # Presence marks went with the room: send every visitor's again.
            self._marked, self._marked_bucket = bytearray(), -1
        if (
            result.waiting == 0
            or result.config.mode != "queue"
            or previous is None
            or previous.config != result.config
            or previous.epoch != result.epoch
        ):
            self._samples.clear()
        self._samples.append((result.now, result.frontier))
        while self._samples and result.now - self._samples[0][0] > MEASURE_WINDOW_S:
            self._samples.popleft()
        self.snapshot = result
        self._fetched_at = time.monotonic()
        self._metrics.observe_room(self.store.room, result, self.measured_rate_per_minute())

    def measured_rate_per_minute(self) -> float | None:
        """Admissions per minute actually seen over the last minute of backlog, if known."""
        if len(self._samples) < 2:
            return None
        (t0, f0), (t1, f1) = self._samples[0], self._samples[-1]
        if t1 - t0 < MEASURE_MIN_S:
            return None
        return (f1 - f0) * 60 / (t1 - t0)

    @property
    def fresh(self) -> bool:
        return self.snapshot is not None and time.monotonic() - self._fetched_at < STALE_AFTER_S

    def estimate(self, position: int) -> Estimate:
        """Honest wait and next poll interval for the visitor at `position` (1 = next).

        The measured rate is the frontier's speed, which counts visitors passed over
        because they left: the estimate stays honest when many leave."""
        snap = self.snapshot
        assert snap is not None
        wait_s: float | None = None
        if snap.config.mode == "queue":
            rate = self.measured_rate_per_minute() or float(snap.config.rate_per_minute)
            if snap.config.rate_mode == "adaptive":  # the rate admitted at now
                rate = 0.0 if snap.backend_down else snap.effective_rate
            if rate > 0:
                wait_s = position * 60 / rate
        return Estimate(position, wait_s, self.poll_after(wait_s))

    def poll_after(self, wait_s: float | None) -> float:
        """Poll often near the front, rarely far back, with jitter so polls do not align.

        interval = clamp(wait / 10, poll_min, poll_max) * uniform(0.8, 1.2); while paused or
        closed (no estimate) the longest interval. In the pre-queue `wait_s` is the time
        until opening, so visitors poll every poll_min seconds in the last minute before it.
        """
        s = self._settings
        base = s.poll_max_s if wait_s is None else min(max(wait_s / 10, s.poll_min_s),
                                                       s.poll_max_s)
        jittered = base * self._rng.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        return round(max(jittered, s.poll_min_s * (1 - POLL_JITTER)), 1)

    async def run(self) -> None:
        """Tick forever; on Redis errors keep the last snapshot and retry with backoff."""
        interval = self._settings.tick_interval_s
        delay = interval
        while True:
            try:
                await self.refresh()
                delay = interval
            except GateUnavailable as exc:
                self._metrics.redis_errors.labels(self.store.room, "tick").inc()
                log.warning("room %s: tick failed, keeping the last view: %s",
                            self.store.room, exc)
                delay = min(delay * 2, 5.0)
            await asyncio.sleep(delay)


@contextlib.asynccontextmanager
async def running(view: RoomView) -> AsyncIterator[asyncio.Task[None]]:
    """Run the ticker as a background task; cancel it on exit."""
    task = asyncio.create_task(view.run(), name=f"admission-ticker-{view.store.room}")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
