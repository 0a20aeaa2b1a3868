"""The wheel carries every page template, Lua script and data file the code loads."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_templates_scripts_and_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        f"site_templates/{path.relative_to(ROOT / 'templates')}"
        for path in (ROOT / "templates").rglob("*.html")
    }
    for package in ("queue_gate", "booking_backend"):
        for folder in ("lua", "data"):
            wanted |= {
                f"{package}/{path.relative_to(ROOT / package)}"
                for path in (ROOT / package / folder).glob("*") if path.is_file()
            } if (ROOT / package / folder).is_dir() else set()
        wanted.add(f"{package}/py.typed")
    assert any(name.startswith("site_templates/gate/") for name in wanted)
    assert wanted - names == set()
