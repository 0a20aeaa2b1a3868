"""Proof against a real Prometheus: it scrapes the real gate processes during a short rush,
then every dashboard panel's query must return data and every alert rule must evaluate.

Needs the `prometheus` binary (Debian: apt-get install prometheus); skipped without it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from booking_backend import api, views
from booking_backend.catalogue import demo_catalogue_json
from devtools.servers import private_postgres, private_redis
from tests.ops.dashboards import (
    ALERTS,
    COMPOSE_PROMETHEUS,
    PanelQuery,
    all_panel_queries,
    dashboard_files,
    load_dashboard,
    metric_names,
    substitute,
)
from tests.ops.prometheus_server import (
    PROMETHEUS_MISSING,
    Prometheus,
    ScrapeJob,
    private_prometheus,
    prometheus_binary,
)
from tests.ops.stack import (
    HOME_CENTRE,
    OPENS_IN_S,
    RATE_PER_MINUTE,
    ROOM,
    RushReport,
    Stack,
)

pytestmark = pytest.mark.skipif(prometheus_binary() is None, reason=PROMETHEUS_MISSING)

# Job names are those of prometheus/prometheus.yml: the alert rules select on them.
GATE_JOB = "queue-gate"
BACKEND_JOB = "booking-backend"


@dataclass
class Rushed:
    stack: Stack
    prometheus: Prometheus
    report: RushReport


@pytest.fixture(scope="module")
def rushed() -> Iterator[Rushed]:
    """Redis, PostgreSQL, three gate processes, a backend and Prometheus; a rush; then the
    tests read."""
    with private_redis() as redis_url, private_postgres() as database_url:
        stack = Stack(redis_url, database_url)
        try:
            stack.start()
            jobs = [ScrapeJob(GATE_JOB, stack.gate_targets),
                    ScrapeJob(BACKEND_JOB, [stack.backend.target])]
            with private_prometheus(jobs, rule_files=[ALERTS], interval_s=1.0) as prometheus:
                wait_for_first_scrapes(prometheus, len(jobs[0].targets) + 1)
                report = stack.rush()
                yield Rushed(stack, prometheus, report)
        finally:
            stack.stop()


def wait_for_first_scrapes(prometheus: Prometheus, count: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        health = prometheus.targets_up()
        if len(health) == count and all(h == "up" for h in health.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"targets not all up: {prometheus.targets_up()}")


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(series["value"][1]) for series in result]


def one_value(prometheus: Prometheus, expr: str) -> float:
    result = values(prometheus.query(expr))
    assert len(result) == 1, (expr, result)
    return result[0]


def test_the_rush_went_through_the_gate(rushed: Rushed) -> None:
    report = rushed.report
    assert report.refused == 3
    assert report.joined > 100
    assert 0 < report.admitted < report.joined
    assert report.left > 0
    assert report.forwarded_class(2) > 0 and report.forwarded_class(4) > 0
    assert report.forwarded_class(5) == 0, report.forwarded
    assert report.proxy_failures > 0
    assert report.booked > 10 and report.cancelled > 0 and report.waitlisted > 0
    assert report.holds_abandoned > 0 and report.bypass_refused == 1
    assert report.waiting_at_end > 0


def test_the_jobs_are_named_as_in_the_compose_prometheus_config() -> None:
    """The alert rules select on these job names; the test's Prometheus must use them too."""
    config = COMPOSE_PROMETHEUS.read_text(encoding="utf-8")
    assert f"job_name: {GATE_JOB}\n" in config
    assert f"job_name: {BACKEND_JOB}\n" in config


def test_prometheus_scrapes_every_process(rushed: Rushed) -> None:
    health = rushed.prometheus.targets_up()
    assert sorted(health) == sorted(
        f"http://{t}/metrics" for t in [*rushed.stack.gate_targets, rushed.stack.backend.target])
    assert set(health.values()) == {"up"}, health


def test_the_room_variable_lists_the_room(rushed: Rushed) -> None:
    for path in dashboard_files():
        board = load_dashboard(path)
        for variable in board["templating"]["list"]:
            if variable["name"] != "room":
                continue
            # label_values(metric, label) is Grafana's; this is the API call behind it.
            definition = variable["definition"]
            assert definition.startswith("label_values(") and definition.endswith(")")
            metric, label = (part.strip() for part in definition[13:-1].split(","))
            found = rushed.prometheus.get(f"/api/v1/label/{label}/values",
                                          **{"match[]": metric})
            assert found == [ROOM], (path.name, found)


def test_the_centre_variable_lists_every_centre(rushed: Rushed) -> None:
    found = rushed.prometheus.get("/api/v1/label/centre/values",
                                  **{"match[]": "booking_centre_slot_units"})
    centres = {c["id"] for c in json.loads(demo_catalogue_json())["centres"]}
    assert set(found) == centres and HOME_CENTRE in found


def test_every_dashboard_panel_returns_data(rushed: Rushed) -> None:
    queries = all_panel_queries()
    assert len(queries) > 20
    empty: list[str] = []
    for query in queries:
        result = evaluate(rushed.prometheus, query)
        if not any(math.isfinite(v) for v in values(result)):
            empty.append(f"{query} -> {result}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def evaluate(prometheus: Prometheus, query: PanelQuery) -> list[dict[str, Any]]:
    # The operator picked the room (and the centre where the rush booked) in the drop-downs,
    # as Grafana sends them.
    return prometheus.query(substitute(query.expr, {"room": ROOM, "centre": HOME_CENTRE}))


def test_the_panels_tell_the_story_of_the_rush(rushed: Rushed) -> None:
    """Not only data: the numbers an operator reads are the right ones."""
    prom, report = rushed.prometheus, rushed.report
    room = f'{{room="{ROOM}"}}'
    waiting = one_value(prom, f"max by (room) (queuegate_visitors_waiting{room})")
    # Admission kept running after the rush ended, so the line is shorter now.
    assert 0 < waiting <= report.waiting_at_end
    assert one_value(prom, f"max by (room) (queuegate_admission_rate_per_minute{room})") == (
        RATE_PER_MINUTE)
    measured = one_value(prom, f"max by (room) (queuegate_admission_rate_measured_per_minute"
                               f"{room})")
    assert 0.8 * RATE_PER_MINUTE <= measured <= 1.2 * RATE_PER_MINUTE
    estimated = one_value(prom, f"max by (room) (queuegate_estimated_wait_seconds{room})")
    assert estimated == pytest.approx(waiting * 60 / measured, rel=0.3)
    mode = prom.query(f"max by (room, mode) (queuegate_room_mode{room}) == 1")
    assert [s["metric"]["mode"] for s in mode] == ["queue"]
    # Over the rush: more arrived than were admitted, and admission ran at the setting.
    arrived = one_value(prom, f"sum by (room) (increase(queuegate_tickets_issued_total{room}"
                              "[1m]))")
    admitted = one_value(prom, f"max by (room) (delta(queuegate_room_admitted{room}[15s]))")
    assert arrived > 100
    assert admitted == pytest.approx(RATE_PER_MINUTE / 4, abs=10)
    waited = one_value(prom, "histogram_quantile(0.9, sum by (room, le) "
                             f"(rate(queuegate_wait_duration_seconds_bucket{room}[1m])))")
    assert 0 < waited < 60
    # The pre-queue filled before the opening and was drawn into the line at the opening.
    assert one_value(prom, f"max(max_over_time(queuegate_prequeue_visitors{room}[1m]))") > 0
    assert one_value(prom, f"max(queuegate_prequeue_visitors{room})") == 0
    # Visitors who closed the page were passed over without using an admission.
    assert one_value(prom, f"max(queuegate_room_left_while_waiting{room})") > 0
    reasons = {s["metric"]["reason"] for s in prom.query(
        f"sum by (reason) (queuegate_tokens_rejected_total{room})")}
    assert {"ticket_invalid", "pass_invalid", "session_ended"} <= reasons
    classes = {s["metric"]["status_class"] for s in prom.query(
        f"sum by (status_class) (queuegate_proxy_request_duration_seconds_count{room})")}
    assert {"2xx", "4xx"} <= classes
    # At least: a visitor cancelled at the end of the rush may not have counted their 502.
    assert one_value(prom, f"sum(queuegate_proxy_errors_total{room})") >= report.proxy_failures
    assert one_value(prom, f'sum(queuegate_redis_errors_total{{room="{ROOM}",'
                           'operation="tick"})') > 0
    assert one_value(prom, f'sum(up{{job="{GATE_JOB}"}})') == 3


def test_the_session_panels_tell_the_story_of_the_rush(rushed: Rushed) -> None:
    """Little's law needs the measured session time; the cap and opening time are shown."""
    prom, report = rushed.prometheus, rushed.report
    room = f'{{room="{ROOM}"}}'
    median = one_value(prom, "histogram_quantile(0.5, sum by (room, le) "
                             f"(rate(queuegate_session_duration_seconds_bucket{room}[1m])))")
    # Bookers take their time for the code (delivered, or retried after 2 s) and confirm.
    assert 0 < median < 30
    # No cap in the rush (with one, the gate admits below the setting: reported).
    assert one_value(prom, f"max by (room) (queuegate_max_active_sessions{room})") == 0
    # The opening time is gone once the draw happened; the panel shows the last one set.
    assert not prom.query(f"queuegate_room_opens_at_timestamp_seconds{room}")
    opens = one_value(prom, "max by (room) (max_over_time("
                            f"queuegate_room_opens_at_timestamp_seconds{room}[1m]))")
    assert time.time() - 120 < opens < time.time() - OPENS_IN_S / 2
    issued = one_value(prom, f"max by (room) (queuegate_room_passes_issued{room})")
    ended = one_value(prom, f"max by (room) (queuegate_room_passes_ended{room})")
    # Room-wide, from Redis: every booking ended its session, and passes went only to people
    # who joined. (Not "<= admitted": a pass issued to a poll whose answer arrived after the
    # rush generator stopped listening is issued but never seen as admitted.)
    assert report.booked <= ended < issued <= report.joined


def test_every_metric_in_the_dashboards_reached_prometheus(rushed: Rushed) -> None:
    stored = set(rushed.prometheus.get("/api/v1/label/__name__/values"))
    used = set().union(*(metric_names(q.expr) for q in all_panel_queries()))
    assert used <= stored, sorted(used - stored)


def test_alert_rules_evaluate_cleanly_on_live_data(rushed: Rushed) -> None:
    groups = rushed.prometheus.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules, "prometheus/alerts.yml loaded no rules"
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken, broken


def test_the_cut_off_gate_raises_the_redis_alert(rushed: Rushed) -> None:
    """Gate C lost Redis: the alert is pending (it fires after its `for`) or firing."""
    alerts = rushed.prometheus.get("/api/v1/alerts")["alerts"]
    active = {(a["labels"]["alertname"], a["state"]) for a in alerts}
    assert {name for name, _state in active} >= {"QueueGateRedisErrors"}, active
    # And nothing claims the room is stuck: admission ran at the configured rate.
    assert "QueueGateAdmissionStalled" not in {name for name, _state in active}


def test_the_booking_panels_tell_the_story_of_the_rush(rushed: Rushed) -> None:
    prom, report = rushed.prometheus, rushed.report

    def total(expr: str) -> float:
        return one_value(prom, f"sum({expr})")

    # Counted by the backend at least as often as the visitors saw it (a visitor cancelled at
    # the end of the rush may have been answered without counting it).
    assert total('booking_bookings_total{channel="api"}') >= report.booked
    assert total("booking_cancellations_total") >= report.cancelled
    # Every cancelled pair went to someone on the waiting list, who was told by message.
    assert total('booking_bookings_total{channel="waitlist"}') >= 1
    assert total('booking_outbox_deliveries_total{outcome="retry"}') >= 1
    assert total('booking_outbox_deliveries_total{outcome="delivered"}') >= (
        report.booked + report.cancelled)
    # Counted in Redis by whoever freed them (sweeper or next hold). Bookers confirm in
    # time, so only holds people walked away from can have expired; the earliest surely did.
    assert 1 <= one_value(prom, "max(booking_holds_expired_total)") <= report.holds_abandoned
    assert 1 <= one_value(prom, "max(booking_codes_expired_total)") <= report.codes_abandoned
    assert total('booking_code_checks_total{outcome="wrong"}') >= 1
    assert total('booking_pass_rejections_total{reason="pass_missing"}') == (
        report.bypass_refused)
    assert not prom.query('booking_http_requests_total{status="5xx"} > 0')
    booked_units = one_value(prom, 'max(booking_slot_units{state="booked"})')
    assert booked_units == 2 * one_value(prom, "max(booking_active_bookings)")
    # Every booking of the rush was at the home centre; the centres add up to the totals.
    assert one_value(prom, f'max(booking_centre_slot_units{{centre="{HOME_CENTRE}",'
                           'state="booked"})') == booked_units
    for state in ("free", "held", "booked"):
        by_centre = one_value(prom, f'sum(max by (centre) (booking_centre_slot_units'
                                    f'{{state="{state}"}}))')
        assert by_centre == one_value(prom, f'max(booking_slot_units{{state="{state}"}})')
    # Refused first attempts waited for their retry in the outbox; now all are delivered.
    assert one_value(prom, "max(max_over_time(booking_outbox_pending[1m]))") >= 1
    assert one_value(prom, "max(max_over_time(booking_outbox_oldest_pending_seconds[1m]))") > 0
    delay = one_value(prom, "histogram_quantile(0.9, sum by (le) "
                            "(rate(booking_outbox_delivery_delay_seconds_bucket[1m])))")
    assert 0 < delay < 10


def test_requests_are_labelled_by_route_pattern_only(rushed: Rushed) -> None:
    """The route label holds the app's route patterns (and `unmatched`), never a raw path."""
    found = set(rushed.prometheus.get("/api/v1/label/route/values",
                                      **{"match[]": "booking_http_requests_total"}))
    app = web.Application()  # the public app's router, as create_app builds it
    views.setup_routes(app)
    api.setup_routes(app)
    patterns = {resource.canonical for resource in app.router.resources()}
    assert found <= patterns | {"unmatched"}, sorted(found - patterns)
    assert {"/api/v1/offers", "/api/v1/holds", "/api/v1/holds/{hold_id}/confirm"} <= found
    slow = rushed.prometheus.query(
        "histogram_quantile(0.95, sum by (route, le) "
        '(rate(booking_http_request_duration_seconds_bucket{route="/api/v1/holds"}[1m])))')
    assert 0 < values(slow)[0] < 1
