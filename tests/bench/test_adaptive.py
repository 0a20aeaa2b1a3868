"""Adaptive admission with real processes (issue 15): two gate processes, the real booking
backend behind `bench.standin`, visitors booking through the gate. While the backend answers
nothing (the stand-in hangs: connections open, no answer) the room stops admitting once the
gates have seen it, the visitors see the "recovering" 503 and no error; when it answers
again, admissions resume. Counts, not timings (the quick bench, adaptive mode only).

About 30 s; the subprocess timeout stays below the suite's 180 s pytest-timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_adaptive_stops_admitting_while_the_backend_answers_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.adaptive", "--quick", "--modes", "adaptive", "--out",
         str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads((tmp_path / "results.json").read_text())["adaptive"]
    # The gates noticed the silence (from the requests in flight, or a probe that timed
    # out) while it lasted ...
    assert run["dead_detected_after_s"] is not None
    # ... and from then on the room admitted nobody: the decision is one, in Redis, and
    # tick-11.lua admits at 0 while it says "down". (Before it, a hang costs the admissions
    # of the detection time, a few seconds at rate_max: reported, not held here.)
    assert run["admissions_after_detection"] == 0
    # Visitors holding a pass were told the booking system is recovering, never an error.
    assert run["visitors_503_recovering"] > 0
    assert run["visitors_5xx_or_no_answer"] == 0, run["error_kinds"]
    # It answered again: the gates saw it and admitted again.
    assert run["backend_up_again_after_s"] is not None
    assert run["admitted_per_minute_by_phase"]["recovery"] > 0
    assert run["bookings_in_database"] > 0
    assert run["bookings_lost"] == 0
    assert run["oversold_units"] == 0
