"""Prometheus metrics of the gate: one object, built on a registry passed in.

Values that describe the whole room (waiting visitors, the frontier, active passes) are
read from Redis by every process's tick, so every process reports the same number:
dashboards take `max by (room)` of those, and `sum` of the per-process counters.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from queue_gate.settings import MODES

if TYPE_CHECKING:
    from queue_gate.store import TickResult

PREFIX = "queuegate"
WAIT_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))
PROXY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


class GateMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def name(suffix: str) -> str:
            return f"{PREFIX}_{suffix}"

        self.registry = registry
        self._rooms: dict[str, _RoomGauges] = {}
        self.tickets_issued = Counter(
            name("tickets_issued"), "Tickets handed to arriving visitors by this process",
            ["room"], registry=registry)
        self.passes_issued = Counter(
            name("passes_issued"), "Admission passes handed out by this process",
            ["room"], registry=registry)
        self.passes_ended = Counter(
            name("passes_ended"), "Passes ended early by this process (session done)",
            ["room"], registry=registry)
        self.rejections = Counter(
            name("tokens_rejected"), "Tickets and passes refused, by reason",
            ["room", "reason"], registry=registry)
        self.joins_refused = Counter(
            name("joins_refused"),
            "Arrivals turned away, by reason (room_closed, address_limit)",
            ["room", "reason"], registry=registry)
        self.time_waited = Histogram(
            name("wait_duration_seconds"), "Time from joining to admission, per admitted visitor",
            ["room"], buckets=WAIT_BUCKETS, registry=registry)
        self.session_duration = Histogram(
            name("session_duration_seconds"),
            "From a pass being issued to the backend ending the session (the booking time)",
            ["room"], buckets=WAIT_BUCKETS, registry=registry)
        self.proxy_duration = Histogram(
            name("proxy_request_duration_seconds"),
            "Time to the booking backend's response headers, by status class",
            ["room", "status_class"], buckets=PROXY_BUCKETS, registry=registry)
        self.proxy_errors = Counter(
            name("proxy_errors"), "Requests the backend could not answer, by reason",
            ["room", "reason"], registry=registry)
        # Issue 16: messages when the turn is near.
        self.turn_optins = Counter(
            name("turn_optins"), "Visitors who asked for a message when their turn is near",
            ["room"], registry=registry)
        self.turn_messages = Counter(
            name("turn_messages"),
            "Turn messages asked of the booking backend, by outcome (sent: queued there; "
            "retried: it could not be reached, asked again later; failed: it refused)",
            ["room", "outcome"], registry=registry)
        self.redis_errors = Counter(
            name("redis_errors"), "Redis operations that failed, by operation",
            ["room", "operation"], registry=registry)
        self.redis_durable = Gauge(
            name("redis_durable"),
            "1 if every Redis master of the room keeps data through a restart (append-only "
            "file, RDB snapshots or a replica), 0 if one keeps nothing; checked at start",
            ["room"], registry=registry)
        # Room-wide values, as the last tick saw them.
        self.waiting = Gauge(
            name("visitors_waiting"), "Visitors in line and not yet admitted",
            ["room"], registry=registry)
        self.tickets_total = Gauge(
            name("room_tickets"), "Tickets issued in the room since it was created (all processes)",
            ["room"], registry=registry)
        self.admitted_total = Gauge(
            name("room_admitted"), "Visitors admitted since the room was created",
            ["room"], registry=registry)
        self.left_total = Gauge(
            name("room_left_while_waiting"),
            "Visitors passed over because they had stopped polling (left the queue)",
            ["room"], registry=registry)
        self.prequeue = Gauge(
            name("prequeue_visitors"), "Visitors in the pre-queue, waiting for the opening draw",
            ["room"], registry=registry)
        self.room_passes_issued = Gauge(
            name("room_passes_issued"), "Passes issued in the room since it was created",
            ["room"], registry=registry)
        self.room_passes_ended = Gauge(
            name("room_passes_ended"),
            "Passes ended early by the backend in the room since it was created",
            ["room"], registry=registry)
        self.max_active_sessions = Gauge(
            name("max_active_sessions"), "Configured cap on active sessions (0: none)",
            ["room"], registry=registry)
        self.opens_at = Gauge(
            name("room_opens_at_timestamp_seconds"),
            "The room's opening time; absent when none is set",
            ["room"], registry=registry)
        self.passes_active = Gauge(
            name("passes_active"), "Admission passes not yet expired or ended",
            ["room"], registry=registry)
        self.rate_configured = Gauge(
            name("admission_rate_per_minute"), "Configured admission rate, visitors per minute",
            ["room"], registry=registry)
        self.rate_measured = Gauge(
            name("admission_rate_measured_per_minute"),
            "Visitors admitted per minute (present ones only: not those passed over as "
            "gone), measured over the last minute of backlog (NaN if unknown)",
            ["room"], registry=registry)
        self.passed_over_rate = Gauge(
            name("passed_over_per_minute"),
            "Visitors passed over as gone per minute, measured over the last minute of "
            "backlog (NaN if unknown)", ["room"], registry=registry)
        self.frontier_rate = Gauge(
            name("frontier_speed_per_minute"),
            "How fast places in line move: admitted plus passed over per minute, measured "
            "over the last minute of backlog (NaN if unknown); estimates use it",
            ["room"], registry=registry)
        # Operators' changes, counted by the process that made them: dashboards annotate them.
        self.room_changes = Counter(
            name("room_changes"), "Room settings changed through the admin API, by field",
            ["room", "field"], registry=registry)
        # Call-centre agents' passes (agents.py), apart from the citizens' passes.
        self.agent_passes_issued = Counter(
            name("agent_passes_issued"),
            "Passes for call-centre agents issued through the admin API by this process",
            ["room"], registry=registry)
        self.agent_passes_revoked = Counter(
            name("agent_passes_revoked"),
            "Agent passes withdrawn before their shift ended, through this process",
            ["room"], registry=registry)
        self.agent_passes_active = Gauge(
            name("agent_passes_active"),
            "Agent passes not yet expired or revoked in the room (read from Redis when "
            "/metrics is scraped)", ["room"], registry=registry)
        self.agent_requests = Counter(
            name("agent_requests"),
            "Requests proxied to the backend under an agent's pass by this process",
            ["room"], registry=registry)
        # Scheduled changes, counted by the process that applied them (each entry by one).
        self.schedule_changes_applied = Counter(
            name("schedule_changes_applied"),
            "Entries of the room's schedule applied by this process (each entry is applied "
            "by exactly one process: sum over processes)", ["room"], registry=registry)
        self.estimated_wait = Gauge(
            name("estimated_wait_seconds"), "Estimated wait of a visitor joining now",
            ["room"], registry=registry)
        self.reseeded_at = Gauge(
            name("room_reseeded_at_timestamp_seconds"),
            "When Redis last lost the room and a gate re-created it from its last snapshot "
            "(absent if never)", ["room"], registry=registry)
        self.mode = Gauge(
            name("room_mode"), "1 for the room's current mode, 0 for the others",
            ["room", "mode"], registry=registry)
        # Adaptive admission (health.py): the room's decision, and this process's view.
        self.rate_effective = Gauge(
            name("admission_rate_effective_per_minute"),
            "Rate the room admits at now: the configured one in fixed mode, the controller's "
            "decision in adaptive mode (0 while the backend answers nothing)",
            ["room"], registry=registry)
        self.rate_min = Gauge(
            name("admission_rate_min_per_minute"),
            "Adaptive mode's lowest rate while the backend answers (NaN in fixed mode)",
            ["room"], registry=registry)
        self.rate_adaptive = Gauge(
            name("admission_rate_adaptive"), "1 if the room's rate follows the backend's health",
            ["room"], registry=registry)
        self.backend_down = Gauge(
            name("backend_down"),
            "1 while the room's decision says the backend answers nothing (adaptive mode)",
            ["room"], registry=registry)
        self.backend_verdicts = Counter(
            name("backend_verdicts"),
            "This process's verdicts on the backend, one per window (ok, trouble, dead, idle)",
            ["room", "verdict"], registry=registry)
        self.backend_capacity = Gauge(
            name("backend_capacity_hint"),
            "The backend's newest capacity hint seen by this process (0 saturated .. 1 idle)",
            ["room"], registry=registry)
        self.backend_in_flight = Gauge(
            name("backend_requests_in_flight"),
            "Requests this process has at the backend now (bounded by "
            "QUEUE_GATE_BACKEND_MAX_CONNECTIONS)", ["room"], registry=registry)

    def forget_room(self, room: str) -> None:
        """Drop a room's state gauges (a room this process no longer serves: deleted), so
        dashboards stop listing it; its counters stay until the process restarts."""
        gauges = (self.waiting, self.tickets_total, self.admitted_total, self.left_total,
                  self.prequeue, self.room_passes_issued, self.room_passes_ended,
                  self.max_active_sessions, self.opens_at, self.passes_active,
                  self.rate_configured, self.rate_measured, self.passed_over_rate,
                  self.frontier_rate, self.estimated_wait, self.reseeded_at,
                  self.rate_effective, self.rate_min, self.rate_adaptive, self.backend_down)
        for gauge in gauges:
            with contextlib.suppress(KeyError):
                gauge.remove(room)
        for mode in MODES:
            with contextlib.suppress(KeyError):
                self.mode.remove(room, mode)
        self._rooms.pop(room, None)

    def _room_gauges(self, room: str) -> _RoomGauges:
        """The room's children of the gauges set on every tick, looked up once (a tick of
        each room a few times a second would otherwise pay ~25 label lookups)."""
        found = self._rooms.get(room)
        if found is None:
            found = self._rooms[room] = _RoomGauges(
                waiting=self.waiting.labels(room), tickets=self.tickets_total.labels(room),
                admitted=self.admitted_total.labels(room), left=self.left_total.labels(room),
                prequeue=self.prequeue.labels(room),
                passes_active=self.passes_active.labels(room),
                passes_issued=self.room_passes_issued.labels(room),
                passes_ended=self.room_passes_ended.labels(room),
                max_active=self.max_active_sessions.labels(room),
                rate_configured=self.rate_configured.labels(room),
                rate_measured=self.rate_measured.labels(room),
                passed_over=self.passed_over_rate.labels(room),
                frontier=self.frontier_rate.labels(room),
                estimated_wait=self.estimated_wait.labels(room),
                modes=tuple((mode, self.mode.labels(room, mode)) for mode in MODES),
                rate_effective=self.rate_effective.labels(room),
                rate_min=self.rate_min.labels(room),
                rate_adaptive=self.rate_adaptive.labels(room),
                backend_down=self.backend_down.labels(room))
        return found

    def observe_room(self, room: str, tick: TickResult, measured: float | None,
                     passed_over: float | None = None,
                     frontier_speed: float | None = None) -> None:
        g = self._room_gauges(room)
        g.waiting.set(tick.waiting)
        g.tickets.set(tick.seq)
        g.admitted.set(tick.admitted)
        g.left.set(tick.skipped)
        g.prequeue.set(tick.prequeue_size)
        g.passes_active.set(tick.passes_active)
        g.passes_issued.set(tick.passes_issued)
        g.passes_ended.set(tick.passes_ended)
        g.max_active.set(tick.config.max_active_sessions)
        if tick.config.opens_at is None:
            with contextlib.suppress(KeyError):
                self.opens_at.remove(room)
        else:
            self.opens_at.labels(room).set(tick.config.opens_at)
        if tick.reseeded_at is not None:
            self.reseeded_at.labels(room).set(tick.reseeded_at)
        g.rate_configured.set(tick.config.rate_per_minute)
        g.rate_measured.set(float("nan") if measured is None else measured)
        g.passed_over.set(float("nan") if passed_over is None else passed_over)
        g.frontier.set(float("nan") if frontier_speed is None else frontier_speed)
        rate = frontier_speed or tick.config.rate_per_minute
        wait = tick.waiting * 60 / rate if tick.config.mode == "queue" and rate > 0 else -1
        g.estimated_wait.set(wait if wait >= 0 else float("nan"))
        for mode, child in g.modes:
            child.set(1 if mode == tick.config.mode else 0)
        adaptive = tick.config.rate_mode == "adaptive"
        g.rate_effective.set(tick.effective_rate)
        g.rate_min.set(tick.config.rate_min if adaptive else float("nan"))
        g.rate_adaptive.set(int(adaptive))
        g.backend_down.set(int(tick.backend_down))
        if adaptive:  # what the operator configured is the ceiling
            g.rate_configured.set(tick.config.rate_max)


@dataclass(frozen=True, slots=True)
class _RoomGauges:
    waiting: Gauge
    tickets: Gauge
    admitted: Gauge
    left: Gauge
    prequeue: Gauge
    passes_active: Gauge
    passes_issued: Gauge
    passes_ended: Gauge
    max_active: Gauge
    rate_configured: Gauge
    rate_measured: Gauge
    passed_over: Gauge
    frontier: Gauge
    estimated_wait: Gauge
    modes: tuple[tuple[str, Gauge], ...]
    rate_effective: Gauge
    rate_min: Gauge
    rate_adaptive: Gauge
    backend_down: Gauge
