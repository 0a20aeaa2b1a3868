"""constraints/ agrees with pyproject.toml: the minimum pins are the declared floors, and
production pins every runtime dependency within its declared range."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from devtools import lock


def test_minimum_pins_are_the_declared_floors() -> None:
    declared = lock.floors(lock.runtime_requirements())
    assert lock.read_pins(lock.ROOT / lock.MINIMUM) == declared
    assert set(declared) >= {"aiohttp", "redis", "jinja2", "itsdangerous", "prometheus-client",
                             "babel"}


def test_constraints_are_in_step_with_pyproject() -> None:
    """What `bin/lock --check` says, so a stale file fails the tests, not the deployment."""
    assert lock.problems() == []


def test_every_dependency_needs_one_floor() -> None:
    assert lock.floors([Requirement("Jinja2>=3.0.0,<4")]) == {"jinja2": "3.0.0"}
    with pytest.raises(ValueError, match="exactly one floor"):
        lock.floors([Requirement("redis<9")])


def test_pins_are_read_by_canonical_name(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("# header\nPrometheus_Client==0.14.0  # why\n\naiohttp == 3.14.0\n")
    assert lock.read_pins(path) == {"prometheus-client": "0.14.0", "aiohttp": "3.14.0"}
    path.write_text("redis>=5\n")
    with pytest.raises(ValueError, match="not a name==version pin"):
        lock.read_pins(path)


def test_rendered_files_read_back(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text(lock.render(lock.MINIMUM_HEADER, {"redis": "5.0.1", "babel": "2.11.0"}))
    assert lock.read_pins(path) == {"babel": "2.11.0", "redis": "5.0.1"}
