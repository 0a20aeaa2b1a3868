"""The alert rules and Prometheus's own config pass promtool: syntax, and unit tests of every
alert (prometheus/alerts_test.yml). Needs `promtool` (Debian: apt-get install prometheus)."""

from __future__ import annotations

import subprocess

import pytest

from tests.ops.dashboards import ALERT_TESTS, ALERTS, COMPOSE_PROMETHEUS, metric_names
from tests.ops.prometheus_server import PROMETHEUS_MISSING, promtool_binary

pytestmark = pytest.mark.skipif(promtool_binary() is None, reason=PROMETHEUS_MISSING)


def promtool(*args: str) -> str:
    binary = promtool_binary()
    assert binary is not None
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_alert_rules_are_valid() -> None:
    assert "SUCCESS" in promtool("check", "rules", str(ALERTS))


def test_alert_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(ALERT_TESTS))


def test_compose_prometheus_config_is_valid_and_loads_the_rules() -> None:
    output = promtool("check", "config", str(COMPOSE_PROMETHEUS))
    assert "1 rule files found" in output


def test_every_alert_has_a_unit_test() -> None:
    rules = ALERTS.read_text(encoding="utf-8")
    tested = ALERT_TESTS.read_text(encoding="utf-8")
    names = {line.split(":", 1)[1].strip() for line in rules.splitlines()
             if line.strip().startswith("- alert:")}
    assert names
    untested = {name for name in names if f"alertname: {name}\n" not in tested}
    assert not untested, sorted(untested)
    # The tests feed the rules the series the apps really export (checked against /metrics
    # in test_metric_names.py): a rule tested on a made-up name would prove nothing.
    assert metric_names(tested) <= metric_names(rules)
