"""The dashboards as Grafana reads them, and the query conventions of queue_gate/metrics.py:
room-wide gauges (the same value from every process) are taken with `max`, per-process
counters are summed over `rate`/`increase`. Whether each query returns data is proven
against a real Prometheus in test_prometheus.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ops.dashboards import (
    ALERTS,
    all_panel_queries,
    dashboard_files,
    load_dashboard,
    metric_names,
    panels,
)

# Read from Redis by every process's tick (or sweeper), so every process reports the same.
ROOM_WIDE_GAUGES = {
    "queuegate_visitors_waiting", "queuegate_prequeue_visitors", "queuegate_room_tickets",
    "queuegate_room_admitted", "queuegate_room_left_while_waiting", "queuegate_passes_active",
    "queuegate_admission_rate_per_minute", "queuegate_admission_rate_measured_per_minute",
    "queuegate_passed_over_per_minute", "queuegate_frontier_speed_per_minute",
    "queuegate_estimated_wait_seconds", "queuegate_room_mode",
    "queuegate_room_passes_issued", "queuegate_room_passes_ended",
    "queuegate_max_active_sessions", "queuegate_room_opens_at_timestamp_seconds",
    "booking_slot_units", "booking_waitlist_entries", "booking_active_bookings",
    "booking_centre_slot_units", "booking_outbox_pending", "booking_outbox_oldest_pending_seconds",
}
# Counters the Lua scripts keep in Redis: every backend process exports the same total, so
# their rates are taken with `max`, never summed.
DEPLOYMENT_WIDE_COUNTERS = {"booking_holds_expired_total", "booking_codes_expired_total"}
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def test_both_dashboards_are_there() -> None:
    boards = {path.stem: load_dashboard(path) for path in dashboard_files()}
    assert {b["title"] for b in boards.values()} == {"Waiting room", "Booking"}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["uid"] == name  # the file name is the uid: links use /d/<uid>
        assert board["schemaVersion"] == 39
        assert board["refresh"] and board["time"]["from"].startswith("now-")


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: Path(p).stem)
def test_panels_are_well_formed(path: Path) -> None:
    board = load_dashboard(path)
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        assert panel["type"] in ("row", "stat", "timeseries"), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        # Operators hover the (i): every panel says what it shows and what to do.
        assert len(panel["description"]) > 30, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["legendFormat"], panel["title"]
    boxes = [(p["title"], p["gridPos"]) for p in panels(board)]
    for i, (title, a) in enumerate(boxes):
        for other, b in boxes[i + 1:]:
            apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                     or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
            assert apart, f"{title!r} overlaps {other!r}"


def test_the_waiting_room_has_a_room_variable_used_by_every_gate_query() -> None:
    board = load_dashboard(next(p for p in dashboard_files() if p.stem == "waiting-room"))
    (room,) = board["templating"]["list"]
    assert room["name"] == "room" and room["type"] == "query"
    assert room["definition"] == "label_values(queuegate_visitors_waiting, room)"
    assert room["includeAll"] and room["multi"] and room["allValue"] == ".*"
    for query in all_panel_queries():
        if query.dashboard != "Waiting room":
            continue
        for name in metric_names(query.expr):
            selectors = re.findall(rf"{name}(\{{[^}}]*\}})?", query.expr)
            assert all('room=~"$room"' in s for s in selectors), str(query)


def test_the_booking_dashboard_has_a_centre_variable_used_by_the_centre_panels() -> None:
    board = load_dashboard(next(p for p in dashboard_files() if p.stem == "booking"))
    (centre,) = board["templating"]["list"]
    assert centre["name"] == "centre" and centre["type"] == "query"
    assert centre["definition"] == "label_values(booking_centre_slot_units, centre)"
    assert centre["includeAll"] and centre["multi"] and centre["allValue"] == ".*"
    used = 0
    for query in all_panel_queries():
        selectors = re.findall(r"booking_centre_slot_units(\{[^}]*\})?", query.expr)
        assert all('centre=~"$centre"' in s for s in selectors), str(query)
        used += len(selectors)
    assert used > 0


def expressions() -> list[tuple[str, str]]:
    found = [(str(q), q.expr) for q in all_panel_queries()]
    text = ALERTS.read_text(encoding="utf-8")
    for block in re.findall(r"expr: \|\n((?:          .*\n)+)|expr: (.+)\n", text):
        expr = block[0] or block[1]
        found.append((f"alerts.yml: {expr.strip()}", expr))
    return found


def test_room_wide_gauges_are_taken_with_max() -> None:
    for where, expr in expressions():
        for name in metric_names(expr) & ROOM_WIDE_GAUGES:
            uses = len(re.findall(rf"\b{name}\b", expr))
            under_max = len(re.findall(
                rf"max(?:\s+by\s*\([^)]*\))?\s*\(\s*(?:(?:deriv|changes|max_over_time)\()?"
                rf"{name}\b", expr))
            assert uses == under_max, (where, name)


def test_deployment_wide_counters_are_not_summed_over_processes() -> None:
    for where, expr in expressions():
        for name in metric_names(expr) & DEPLOYMENT_WIDE_COUNTERS:
            uses = len(re.findall(rf"\b{name}\b", expr))
            under_max = len(re.findall(rf"max\s*\(\s*(?:rate|increase)\(\s*{name}\b", expr))
            assert uses == under_max, (where, name)


def test_counters_are_read_as_rates() -> None:
    for where, expr in expressions():
        for name in metric_names(expr):
            if name.endswith(COUNTER_SUFFIXES):
                uses = len(re.findall(rf"\b{name}\b", expr))
                rated = len(re.findall(rf"(?:rate|increase)\(\s*{name}\b", expr))
                assert uses == rated, (where, name)
