"""Prometheus metrics of the booking backend, built on a registry passed in.

Prefix `booking_`, base units, `_total` counters, small fixed label sets (outcome, channel,
sender, state); never a person, booking code or centre-independent free text as a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "booking_http_requests_total", "HTTP requests answered, by surface and status class",
            ["surface", "status"], registry=registry,
        )
        self.request_duration = Histogram(
            "booking_http_request_duration_seconds", "Time to answer a request",
            ["surface"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
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
        self.holds_expired = Counter(
            "booking_holds_expired_total", "Holds expired by the sweeper", registry=registry,
        )
        self.store_errors = Counter(
            "booking_store_errors_total", "Requests that failed because Redis was unavailable",
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

    def observe_counts(self, counts: dict[str, int]) -> None:
        for state in ("capacity", "free", "held", "booked"):
            self.units.labels(state=state).set(counts.get(state, 0))
        self.waiting.set(counts.get("waiting", 0))
        self.active_bookings.set(counts.get("bookings", 0))
