"""The admission ticker and each process's view of its room.

Every gate process runs one `RoomView`. A few times a second it calls the room's tick
script, which advances the admission frontier by the configured rate (Redis decides how
much, so many processes admit no more than one) and returns the room's state. Status polls
answer from that local snapshot: a poll costs no Redis round trip, only the visitor whose
turn has come makes one, to collect their pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import deque
from dataclasses import dataclass

from queue_gate.metrics import GateMetrics
from queue_gate.schedule import NextChange, next_change
from queue_gate.settings import Settings
from queue_gate.store import (
    GateUnavailable,
    RoomConfig,
    RoomMissing,
    RoomStore,
    ScheduleConflict,
    ScheduledChange,
    TickResult,
)

log = logging.getLogger(__name__)

# The measured rate needs this much uninterrupted backlog before it replaces the setting.
MEASURE_MIN_S = 10.0
MEASURE_WINDOW_S = 60.0
# A snapshot older than this means Redis is not answering: health checks say so.
STALE_AFTER_S = 5.0
POLL_JITTER = 0.2
# How often a waiting page checks the room-wide state (`RoomState`), jittered by
# POLL_JITTER: with a one-second cache in front and a tick of 0.25 s, a change reaches every
# waiting page within 6 * 1.2 + 1 + 0.25 < 10 s (docs/architecture.md "Changes reach
# visitors").
ROOM_CHECK_S = 6.0
# The audit's operator for a schedule a gate put back after Redis lost the room.
RESTORED_BY = "gate:restored"


@dataclass(frozen=True, slots=True)
class RoomState:
    """What every waiting page of the room shows alike (mode, message, rate), with a version
    that changes when any of it does: served by `GET /queue/api/room`, the same bytes from
    every process for the same configuration, so caches and ETags agree."""

    version: str
    body: bytes

    @classmethod
    def of(cls, config: RoomConfig, epoch: str, *, effective_rate: float = 0.0,
           backend_down: bool = False, upcoming: NextChange | None = None) -> RoomState:
        adaptive = config.rate_mode == "adaptive"
        fields = {
            "mode": config.mode,
            "message": config.message or None,
            # Adaptive admission: the rate admitted at now, and whether the booking system
            # is recovering (nobody is admitted until it answers again).
            "rate_per_minute": round(effective_rate) if adaptive else config.rate_per_minute,
            "opens_at": config.opens_at,
            "recovering": adaptive and backend_down,
            # The next scheduled closing, pause or opening (queue_gate/schedule.py).
            "next_change": None if upcoming is None else upcoming.as_json(),
        }
        digest = hashlib.blake2b(json.dumps([epoch, fields], sort_keys=True).encode(),
                                 digest_size=8).hexdigest()
        body = json.dumps({"version": digest, **fields, "check_after_s": ROOM_CHECK_S})
        return cls(digest, body.encode())


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
        # (redis time, frontier, admitted, passed over) while the queue had a backlog under
        # one configuration.
        self._samples: deque[tuple[float, int, int, int]] = deque()
        self.room_state: RoomState | None = None
        self._state_inputs: tuple[object, ...] = ()
        # Numbers whose visitors polled since the last tick: marked present by the next one.
        self._seen: set[int] = set()
        # Numbers already sent for the current presence bucket, one bit each: a visitor polls
        # every 2 to 120 s but needs marking once per bucket (half the grace period).
        self._marked = bytearray()
        self._marked_bucket = -1
        self._lock = asyncio.Lock()
        # The room's pending schedule as last read, and the version it was read at (0: a
        # room that never had one); read again only when a tick reports another version.
        self.schedule: tuple[ScheduledChange, ...] = ()
        self._schedule_version = 0
        self.next_change: NextChange | None = None

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
            # The tick says when the schedule's next entry is due: nothing more is asked of
            # Redis until it is (or until the pending list changes).
            if result.schedule_version == 0 and self._schedule_version > 0 and self.schedule:
                # The version never goes back: Redis lost the room (re-created just now).
                result = await self._restore_schedule(result)
            if result.schedule_next is not None and result.schedule_next <= result.now:
                result = await self._apply_schedule(result)
            if result.schedule_version != self._schedule_version:
                await self._read_schedule(result.schedule_version)
            self._record(result)
            return result

    async def _apply_schedule(self, result: TickResult) -> TickResult:
        """Apply the due entries (unless another process was first), then tick again so
        the snapshot shows the room as they left it."""
        room = self.store.room
        try:
            done = await self.store.apply_schedule()
            # Race: another process applied them after our tick; we read its result too.
            for entry_id, changed in done.applied:
                log.info("room %s: scheduled change %s applied: %s", room, entry_id,
                         ", ".join(changed) or "nothing changed")
            if done.applied:
                self._metrics.schedule_changes_applied.labels(room).inc(len(done.applied))
            return await self.store.tick()
        except (GateUnavailable, RoomMissing) as exc:
            # The entries stay due: the next tick tries again.
            self._metrics.redis_errors.labels(room, "schedule").inc()
            log.warning("room %s: applying the schedule failed: %s", room, exc)
            return result

    async def _restore_schedule(self, result: TickResult) -> TickResult:
        """Put the pending schedule this process last read back into a room Redis lost
        (visitors were told of its next change), then tick again to see it."""
        room = self.store.room
        try:
            # Race: every process may try; the first wins, the others find version 1.
            await self.store.set_schedule(self.schedule, operator=RESTORED_BY, read_at=0)
            log.warning("room %s: Redis lost the room's schedule; %d pending entries put "
                        "back from this process's last read", room, len(self.schedule))
            return await self.store.tick()
        except ScheduleConflict:
            return await self.store.tick()
        except (GateUnavailable, RoomMissing) as exc:
            self._metrics.redis_errors.labels(room, "schedule").inc()
            log.warning("room %s: restoring the schedule failed: %s", room, exc)
            return result

    async def _read_schedule(self, version: int) -> None:
        try:
            self.schedule = await self.store.read_schedule()
        except GateUnavailable as exc:
            self._metrics.redis_errors.labels(self.store.room, "schedule").inc()
            log.warning("room %s: reading the schedule failed: %s", self.store.room, exc)
            return  # the version stays old: the next tick reads it again
        self._schedule_version = version

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
        self._samples.append((result.now, result.frontier, result.admitted, result.skipped))
        while self._samples and result.now - self._samples[0][0] > MEASURE_WINDOW_S:
            self._samples.popleft()
        self.next_change = next_change(result.config.mode, self.schedule)
        # Worked out again only when what it shows may have changed (not on every tick).
        inputs = (result.config, result.epoch, result.effective_rate, result.backend_down,
                  self.next_change)
        if self.room_state is None or inputs != self._state_inputs:
            state = RoomState.of(result.config, result.epoch,
                                 effective_rate=result.effective_rate,
                                 backend_down=result.backend_down, upcoming=self.next_change)
            self._state_inputs = inputs
            if self.room_state is None or state.version != self.room_state.version:
                self.room_state = state
        self.snapshot = result
        self._fetched_at = time.monotonic()
        self._metrics.observe_room(self.store.room, result, self.measured_rate_per_minute(),
                                   self.passed_over_per_minute(), self.frontier_per_minute())

    def _per_minute(self, column: int) -> float | None:
        """How fast sample column `column` grew over the last minute of backlog, per minute,
        if ten seconds of it are known."""
        if len(self._samples) < 2:
            return None
        first, last = self._samples[0], self._samples[-1]
        if last[0] - first[0] < MEASURE_MIN_S:
            return None
        return (last[column] - first[column]) * 60 / (last[0] - first[0])

    def measured_rate_per_minute(self) -> float | None:
        """Visitors admitted per minute over the last minute of backlog, if known: only
        those present (passed-over leavers are `passed_over_per_minute`)."""
        return self._per_minute(2)

    def passed_over_per_minute(self) -> float | None:
        """Visitors passed over as gone per minute over the last minute of backlog."""
        return self._per_minute(3)

    def frontier_per_minute(self) -> float | None:
        """The frontier's speed: admitted plus passed over (minus returners admitted), per
        minute. What a place in line moves by, so what estimates use."""
        return self._per_minute(1)

    @property
    def fresh(self) -> bool:
        return self.snapshot is not None and time.monotonic() - self._fetched_at < STALE_AFTER_S

    def estimate(self, position: int) -> Estimate:
        """Honest wait and next poll interval for the visitor at `position` (1 = next).

        The rate is the frontier's speed, which counts visitors passed over because they
        left: the estimate stays honest when many leave."""
        snap = self.snapshot
        assert snap is not None
        wait_s: float | None = None
        resume_s: float | None = None
        if snap.config.mode == "queue":
            rate = self.frontier_per_minute() or float(snap.config.rate_per_minute)
            if snap.config.rate_mode == "adaptive":  # the rate admitted at now
                rate = 0.0 if snap.backend_down else snap.effective_rate
                if snap.backend_down and snap.config.rate_min > 0:
                    # Recovering: no honest estimate, but polls as if admissions went on
                    # at rate_min (where they restart), so the front of the line is back
                    # soon after the backend answers, not after the longest interval.
                    resume_s = position * 60 / snap.config.rate_min
            if rate > 0:
                wait_s = position * 60 / rate
        return Estimate(position, wait_s,
                        self.poll_after(wait_s if resume_s is None else resume_s))

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
