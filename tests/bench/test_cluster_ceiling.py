"""The cluster-against-single ceiling's quick mode (issue 12) runs end to end: a gate on a
single Redis and one on a three-master cluster both answered every request (a smoke test:
no timing assertions). About 10 s; the Sentinel set-up, which the full run adds, is left out
to keep it short.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None,
                                reason="wrk is not installed (apt-get install wrk)")


def test_quick_mode_measures_both_set_ups_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "cluster_ceiling.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster_ceiling", "--quick", "--setups", "single,cluster",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["cases"]) == {f"{setup}:{load}" for setup in ("single", "cluster")
                                     for load in ("status", "join")}
    for name, case in results["cases"].items():
        assert case["errors"] == [0], name
        assert case["rps"][0] > 0, name
        assert results["tick_ms"][name], name  # the probe's ticks were answered
    assert "| cluster | join |" in done.stdout
