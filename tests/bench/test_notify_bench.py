"""bench.notify's quick mode runs end to end (a smoke test: no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_mode_reports_every_figure() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.notify", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for figure in ("bytes_per_visitor", "round_nobody_near_ms", "round_with_kept_in_reach_ms",
                   "tick_marking_all_kept_ms", "round_claiming_200_ms"):
        assert figure in done.stdout
