"""The wheel carries every page template, Lua script, catalogue and data file the code loads,
and nothing that is not the product (development tools, tests, benchmarks)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every file name in a wheel built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def files_under(folder: Path, pattern: str = "*") -> set[Path]:
    return {path for path in folder.glob(pattern) if path.is_file()} if folder.is_dir() else set()


def test_wheel_contains_templates_scripts_catalogues_and_data(wheel_names: set[str]) -> None:
    wanted = {
        f"vaccine_queue/templates/{path.relative_to(ROOT / 'templates')}"
        for path in (ROOT / "templates").rglob("*.html")
    }
    assert "vaccine_queue/templates/gate/waiting.html" in wanted
    # The console's stylesheet and script, served from beside its templates.
    wanted |= {f"vaccine_queue/templates/console/{path.name}"
               for pattern in ("*.css", "*.js")
               for path in (ROOT / "templates" / "console").glob(pattern)}
    for package in ("queue_gate", "booking_backend", "vaccine_queue"):
        for folder in ("lua", "data", "locale", "migrations"):
            wanted |= {
                f"{package}/{path.relative_to(ROOT / package)}"
                for path in files_under(ROOT / package / folder)
            }
        wanted.add(f"{package}/py.typed")
    assert any(name.startswith("vaccine_queue/locale/") for name in wanted)
    assert "booking_backend/migrations/0001_initial.sql" in wanted
    assert wanted - wheel_names == set()


def test_wheel_holds_no_development_tools_tests_or_benchmarks(wheel_names: set[str]) -> None:
    top_level = {name.split("/", 1)[0] for name in wheel_names}
    packages = {name for name in top_level if not name.endswith(".dist-info")}
    assert packages == {"queue_gate", "booking_backend", "vaccine_queue"}
    assert not [name for name in wheel_names if "demo.py" in name or "devredis" in name]


def test_installed_templates_are_found_by_the_project_name() -> None:
    """Editable or not, the theme is `vaccine_queue.templates` (what the pages load)."""
    import importlib.resources

    waiting = importlib.resources.files("vaccine_queue.templates") / "gate" / "waiting.html"
    assert waiting.is_file()
