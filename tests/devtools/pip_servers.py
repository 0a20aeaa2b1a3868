"""Whether this machine should have the pip-packaged servers of the dev extra.

Where pyproject.toml's environment markers install them, a missing package is a failure
(CI proves that path); elsewhere (another platform or Python) the test is skipped."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from devtools.binaries import pip_package_dir

ROOT = Path(__file__).resolve().parents[2]


def installed_here(distribution: str) -> bool:
    """Whether the `demo` extra installs `distribution` on this platform and Python."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["optional-dependencies"]["demo"]:
        requirement = Requirement(line)
        if requirement.name == distribution:
            return requirement.marker is None or requirement.marker.evaluate()
    raise AssertionError(f"{distribution} is not in the demo extra")


def require_pip_package(module: str) -> Path:
    """The package's folder; skips where the extra does not install it, fails where it
    should be and is not."""
    distribution = module.replace("_", "-")
    if not installed_here(distribution):
        pytest.skip(f"the demo extra has no {distribution} for this platform or Python")
    folder = pip_package_dir(module)
    assert folder is not None, f"{distribution} is missing: bin/setup-venv dev installs it"
    return folder
