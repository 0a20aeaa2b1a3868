"""The launch benchmark's quick mode runs end to end (a smoke test: no timing assertions).

About a minute; the subprocess timeout stays below the suite's 180 s pytest-timeout.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None,
                                reason="wrk is not installed (apt-get install wrk)")


def test_quick_mode_runs_and_reports_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.launch", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"ceiling", "rate", "rush", "scale"} <= results.keys()
    rush = results["rush"]
    # Correctness, not speed: every visitor joined and the gate admitted some of them.
    assert rush["joins"] == results["config"]["rush_visitors"]
    assert rush["admitted"] > 0
    assert rush["order_violations_same_gate"] == 0
    # Admitted visitors booked at the real backend, which never sold a unit twice, and
    # every booking it stored was one a visitor was told about (or whose answer the end of
    # the replay cut off).
    assert rush["bookings_ok"] > 0
    for run in (rush["backend_with_gate"], rush["backend_direct"]):
        counts = run["counts"]
        assert counts["booked"] + counts["held"] <= counts["capacity"]
        assert counts["booked"] == 2 * counts["bookings"]
    assert rush["bookings_ok"] <= rush["backend_with_gate"]["counts"]["bookings"]
    if importlib.util.find_spec("matplotlib") is not None:  # the `bench` extra
        for name in ("bench-rush.png", "bench-latency.png", "bench-backend.png",
                     "bench-ceiling.png"):
            assert (tmp_path / name).stat().st_size > 0
    assert "| 8 |" in done.stdout
