"""The many-rooms benchmark runs end to end in a small size: one gate with one room and one
with three (two created at runtime through PUT, served once the registry is read), status
polls at both without errors (a smoke test: no timing assertions). About 15 s."""

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


def test_few_rooms_against_one_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "rooms.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.rooms", "--rooms", "3", "--tickets", "150",
         "--rounds", "1", "--seconds", "1", "--idle-seconds", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["rooms"] == 3 and results["errors"] == 0
    assert results["one_room"]["rps_median"] > 0 and results["many_rooms"]["rps_median"] > 0
