"""Reading the provisioned dashboards and alert rules the way Grafana and Prometheus would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
ALERTS = ROOT / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "prometheus" / "alerts_test.yml"
COMPOSE_PROMETHEUS = ROOT / "prometheus" / "prometheus.yml"

# Our metric names all carry the application's prefix (STYLE.md); label names never do.
METRIC_NAME = re.compile(r"\b(?:queuegate|booking)_[a-z0-9_]*[a-z0-9]\b")
GRAFANA_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(path: Path) -> list[PanelQuery]:
    board = load_dashboard(path)
    found = []
    for panel in panels(board):
        for target in panel.get("targets", []):
            found.append(PanelQuery(board["title"], panel["title"], target["refId"],
                                    target["expr"]))
    return found


def all_panel_queries() -> list[PanelQuery]:
    return [q for path in dashboard_files() for q in panel_queries(path)]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana's `$name` / `${name}` as Grafana would, from `values`.

    Grafana's own interval variables get values fit for the test's 1 s scrape interval
    ($__rate_interval is at least four scrape intervals); a variable nobody gave a value
    for fails the test rather than reaching Prometheus unreplaced.
    """
    builtin = {"__rate_interval": "15s", "__interval": "1s", "__range": "1m",
               "__interval_ms": "1000", "__range_s": "60"}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in values:
            return values[name]
        if name in builtin:
            return builtin[name]
        raise AssertionError(f"no value for ${name} in {expr!r}")

    return GRAFANA_VARIABLE.sub(replace, expr)


def metric_names(text: str) -> set[str]:
    """Names of our metrics (queuegate_*, booking_*) mentioned anywhere in `text`."""
    return set(METRIC_NAME.findall(text))


def exposed_names(exposition: str) -> set[str]:
    """Every series name a /metrics page offers, including those no event has created yet.

    prometheus_client writes `# TYPE` for a labelled metric before its first sample, so
    the name counts from then; histograms add their _bucket, _sum and _count series.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind in ("histogram", "summary"):
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
            if kind == "counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
