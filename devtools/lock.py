"""Keeps `constraints/` in step with pyproject.toml (`bin/lock`).

- `constraints/minimum.txt` pins every runtime dependency at its declared floor (`>=`):
  CI installs the project under it in a second virtualenv and runs the test suite there, so
  a floor that no longer works fails CI instead of a deployment.
- `constraints/production.txt` pins the runtime dependencies and everything they pull in at
  the versions a fresh resolution gives today (newest releases within our ranges, for
  Python 3.11 on Linux, as in the Docker image). The Docker image and the development
  virtualenv (`bin/setup-venv`) install under it, so CI tests what production runs.

    bin/lock            # rewrite minimum.txt from the floors, re-resolve production.txt
    bin/lock --minimum  # only minimum.txt (no network)
    bin/lock --check    # compare only: exit 1 when a file is out of step
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MINIMUM = Path("constraints/minimum.txt")
PRODUCTION = Path("constraints/production.txt")
# What a bare virtualenv holds besides the project's own dependencies.
NOT_DEPENDENCIES = frozenset({"pip", "setuptools", "wheel", "vaccine-queue"})

MINIMUM_HEADER = """\
# The declared floors of pyproject.toml's runtime dependencies, pinned: CI installs the
# project with `-c constraints/minimum.txt` and runs the whole test suite on them.
# Written by bin/lock from pyproject.toml; a test checks that the two agree.
"""
PRODUCTION_HEADER = """\
# Exact versions of the runtime dependencies and of everything they pull in, as resolved
# for Python 3.11 on Linux: the Docker image and bin/setup-venv install under them
# (`pip install -c constraints/production.txt`). Written by bin/lock; rerun it to upgrade.
"""


def runtime_requirements(root: Path = ROOT) -> list[Requirement]:
    """[project].dependencies of pyproject.toml."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in project["dependencies"]]


def floors(requirements: Sequence[Requirement]) -> dict[str, str]:
    """Canonical name -> the version of its `>=` bound; each dependency must have one."""
    found: dict[str, str] = {}
    for requirement in requirements:
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(lower) != 1:
            raise ValueError(f"{requirement} needs exactly one floor (>=): CI installs it")
        found[canonicalize_name(requirement.name)] = lower[0]
    return found


def read_pins(path: Path) -> dict[str, str]:
    """Canonical name -> version of every `name==version` line of a constraints file."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"{path}: {raw!r} is not a name==version pin")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def render(header: str, pins: Mapping[str, str]) -> str:
    return header + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def resolve_runtime(requirements: Sequence[Requirement]) -> dict[str, str]:
    """What installing our runtime dependencies resolves today, in a throwaway virtualenv:
    they and theirs, by canonical name (the project itself is not built: same resolution)."""
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *map(str, requirements)], check=True)
        listing = subprocess.run(
            [python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
            check=True, capture_output=True, text=True).stdout
    return {canonicalize_name(item["name"]): item["version"] for item in json.loads(listing)
            if canonicalize_name(item["name"]) not in NOT_DEPENDENCIES}


def problems(root: Path = ROOT) -> list[str]:
    """How constraints/ disagrees with pyproject.toml (empty when in step)."""
    requirements = runtime_requirements(root)
    found: list[str] = []
    declared = floors(requirements)
    minimum = read_pins(root / MINIMUM)
    if minimum != declared:
        found.append(f"{MINIMUM} pins {minimum}, pyproject.toml's floors are {declared}")
    production = read_pins(root / PRODUCTION)
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in production:
            found.append(f"{PRODUCTION} does not pin {name}")
        elif Version(production[name]) not in requirement.specifier:
            found.append(f"{PRODUCTION} pins {name}=={production[name]}, outside {requirement}")
    return found


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="bin/lock", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="compare only")
    group.add_argument("--minimum", action="store_true", help="only minimum.txt")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for problem in found:
            log.error("%s", problem)
        sys.exit(1 if found else 0)
    (ROOT / MINIMUM).parent.mkdir(exist_ok=True)
    (ROOT / MINIMUM).write_text(render(MINIMUM_HEADER, floors(runtime_requirements())))
    log.info("wrote %s", MINIMUM)
    if not args.minimum:
        resolved = resolve_runtime(runtime_requirements())
        (ROOT / PRODUCTION).write_text(render(PRODUCTION_HEADER, resolved))
        log.info("wrote %s", PRODUCTION)


if __name__ == "__main__":
    main()
