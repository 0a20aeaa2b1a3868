"""The booking-rate benchmark's quick mode (issue 11) against both backends, the Redis one of
commit 6b6893a and the PostgreSQL one, one and two processes: bookings made, every one
confirmed to a person stored once, none oversold, no 5xx and no unexpected answer (counts,
not speed).

About 20 s; the subprocess timeout stays below the suite's 180 s pytest-timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_mode_books_on_both_backends_without_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.booking_rate", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    (variants,) = results["rounds"]
    assert [v["variant"] for v in variants] == [
        "redis-1p", "redis-2p", "postgres-1p", "postgres-2p"]
    for variant in variants:
        check = variant["check"]
        assert check["bookings"] > 0, variant["variant"]
        # Every booking confirmed to a person is in the store, once, and nothing else is.
        assert check["bookings"] == check["confirmed_to_people"] == check["distinct_codes"]
        assert check["booked_units"] == 2 * check["bookings"]
        assert check["oversold_units"] == 0
        for step in [variant["warmup"], *variant["steps"]]:
            assert step["errors"] == {}, (variant["variant"], step["errors"])
            assert step["sold_out"] == 0
    assert "postgres-2p" in done.stdout
