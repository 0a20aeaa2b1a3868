"""Prometheus metrics of the booking backend, built on a registry passed in.

Prefix `booking_`, base units, `_total` counters, small fixed label sets (outcome, channel,
sender, state, route, centre: the catalogue's ~50 centres); never a person, booking code or
free text as a label.

Two kinds of numbers: counters of what this process did (summed over processes), and
deployment-wide values read from the database on every scrape and by the sweeper
(`observe`): the same in every process, so dashboards take their `max`. Among the latter
are two counters (expired holds and codes): only the transaction that ends a hold or a code
sees every expiry, so it counts it in the `counters` table and `DatabaseCounters` exports
the count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from booking_backend.levels import CENTRE_STATES, Levels

# Deployment-wide counters kept in the `counters` table: field -> (metric name, help).
DATABASE_COUNTERS = {
    "holds_expired": ("booking_holds_expired",
                      "Holds whose time ran out, whoever freed them (sweeper, next hold, "
                      "late confirmation); deployment-wide, from the database"),
    "codes_expired": ("booking_codes_expired",
                      "Delivered verification codes whose validity ran out unused; "
                      "deployment-wide, from the database"),
}


# Names (as in `name[]`) whose values `observe` reads from the database; a scrape restricted to
# other names (`/metrics?name[]=booking_http_requests_in_flight`) skips that read.
LEVEL_METRICS = frozenset({
    "booking_slot_units", "booking_centre_slot_units", "booking_waitlist_entries",
    "booking_active_bookings", "booking_outbox_pending", "booking_outbox_oldest_pending_seconds",
    *(f"{name}_total" for name, _ in DATABASE_COUNTERS.values()),
})
# Read from the database on a scrape too, by the day list's own query (check-in, issue 17),
# at most every ATTENDANCE_REFRESH_S: the read visits every dose of two days (about 40,000
# rows for 50 busy centres, 0.1 to 0.3 s measured), more than a 15 s scrape should cost.
ATTENDANCE_METRICS = frozenset({"booking_centre_doses"})
ATTENDANCE_REFRESH_S = 30.0


class DatabaseCounters(Collector):
    """Exports the counters of the `counters` table, as last read from the database.

    Nothing is exported before the first read: a 0 followed by the real value would look
    like a jump, and a missing series is honest. These counters only ever grow.
    """

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        for field, (name, documentation) in DATABASE_COUNTERS.items():
            if field in self.values:
                yield CounterMetricFamily(name, documentation, value=self.values[field])


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "booking_http_requests_total",
            "HTTP requests answered, by surface, route (canonical path; unmatched for 404s) "
            "and status class",
            ["surface", "route", "status"], registry=registry,
        )
        self.request_duration = Histogram(
            "booking_http_request_duration_seconds", "Time to answer a request, by route",
            ["surface", "route"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.in_flight = Gauge(
            "booking_http_requests_in_flight",
            "Requests this process has started and not yet answered (how much load reached "
            "the backend: the gate should keep it bounded)", registry=registry,
        )
        self.pass_rejections = Counter(
            "booking_pass_rejections_total", "Requests refused for a missing or bad admission pass",
            ["reason"], registry=registry,
        )
        self.holds = Counter(
            "booking_holds_total", "Attempts to hold a pair of slots, by outcome",
            ["outcome"], registry=registry,
        )
        self.confirmations = Counter(
            "booking_confirmations_total", "Attempts to confirm a hold, by outcome",
            ["outcome"], registry=registry,
        )
        self.bookings = Counter(
            "booking_bookings_total", "New bookings, by channel (web, api, waitlist)",
            ["channel"], registry=registry,
        )
        self.cancellations = Counter(
            "booking_cancellations_total", "Bookings cancelled", registry=registry,
        )
        self.closure_cancellations = Counter(
            "booking_closure_cancellations_total",
            "Bookings cancelled by a centre closing a range of its appointments",
            registry=registry,
        )
        self.waitlist_joins = Counter(
            "booking_waitlist_joins_total", "Attempts to join the waiting list, by outcome",
            ["outcome"], registry=registry,
        )
        self.codes_requested = Counter(
            "booking_codes_requested_total", "Verification code requests, by outcome",
            ["outcome"], registry=registry,
        )
        self.code_checks = Counter(
            "booking_code_checks_total", "Verification code checks, by outcome",
            ["outcome"], registry=registry,
        )
        self.deliveries = Counter(
            "booking_outbox_deliveries_total", "Outbox delivery attempts, by sender and outcome",
            ["sender", "outcome"], registry=registry,
        )
        self.delivery_delay = Histogram(
            "booking_outbox_delivery_delay_seconds",
            "Time from queuing a message to its delivery",
            registry=registry, buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
        )
        self.database_counters = DatabaseCounters()
        registry.register(self.database_counters)
        self.store_errors = Counter(
            "booking_store_errors_total",
            "Requests that failed because the database was unavailable",
            registry=registry,
        )
        self.units = Gauge(
            "booking_slot_units", "Slot units by state (capacity, free, held, booked)",
            ["state"], registry=registry,
        )
        self.waiting = Gauge(
            "booking_waitlist_entries", "People on the waiting list", registry=registry,
        )
        self.active_bookings = Gauge(
            "booking_active_bookings", "Active bookings", registry=registry,
        )
        self.centre_units = Gauge(
            "booking_centre_slot_units", "Slot units by centre and state (free, held, booked)",
            ["centre", "state"], registry=registry,
        )
        self.outbox_pending = Gauge(
            "booking_outbox_pending",
            "Messages (codes, booking codes, waiting-list news) queued and not yet delivered "
            "or given up", registry=registry,
        )
        self.outbox_oldest = Gauge(
            "booking_outbox_oldest_pending_seconds",
            "Age of the oldest message still waiting for delivery (0: none waiting)",
            registry=registry,
        )
        # Check-in (issue 17): states of rows, read at the scrape, so every process reports
        # the same and a dose marked twice counts once; `day` is today or yesterday of the
        # deployment's time zone (a fixed pair, never a date).
        self.centre_doses = Gauge(
            "booking_centre_doses",
            "Doses due at a centre today or yesterday, by check-in state (attended, no_show, "
            "unmarked); deployment-wide, from the database",
            ["centre", "day", "attendance"], registry=registry,
        )
        self.centre_doses_read_at = float("-inf")  # when `observe_attendance` last ran

    def observe(self, levels: Levels, now: float) -> None:
        """Set the deployment-wide values from one read of the database (`read_levels`)."""
        counts = levels.counts
        for state in CENTRE_STATES:
            self.units.labels(state=state).set(counts.get(state, 0))
        self.waiting.set(counts.get("waiting", 0))
        self.active_bookings.set(counts.get("bookings", 0))
        self.database_counters.values = {field: counts.get(field, 0) for field in DATABASE_COUNTERS}
        # Cleared and refilled without an await in between: a scrape never sees half, and a
        # centre removed from the catalogue disappears.
        self.centre_units.clear()
        for centre, units in levels.centres.items():
            for state in ("free", "held", "booked"):
                self.centre_units.labels(centre=centre, state=state).set(units[state])
        self.outbox_pending.set(levels.outbox_pending)
        oldest = levels.outbox_oldest_created
        self.outbox_oldest.set(0 if oldest is None else max(0.0, now - oldest))

    def attendance_due(self, now: float) -> bool:
        """Whether the check-in gauges are older than ATTENDANCE_REFRESH_S (or the clock
        went back)."""
        age = now - self.centre_doses_read_at
        return not 0 <= age < ATTENDANCE_REFRESH_S

    def observe_attendance(self, counts: Mapping[tuple[str, str, str], int],
                           now: float) -> None:
        """Set the check-in gauges from one read (`DayLists.attendance`): (centre, day,
        state) -> doses. Cleared and refilled without an await in between, as above."""
        self.centre_doses_read_at = now
        self.centre_doses.clear()
        for (centre, day, state), value in counts.items():
            self.centre_doses.labels(centre=centre, day=day, attendance=state).set(value)
