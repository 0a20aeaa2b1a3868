"""The map of the repository holds: no import cycle between top-level packages, the
foundation imports neither service, and the services meet only through the contract."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("queue_gate", "booking_backend", "vaccine_queue")


def imports_of(package: str) -> dict[str, set[str]]:
    """For every module of `package`: the modules it imports (absolute names)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def top_level(name: str) -> str:
    return name.split(".")[0]


def test_no_cycle_between_top_level_packages() -> None:
    graph = {package: {top_level(name) for names in imports_of(package).values()
                       for name in names} & set(SHIPPED) - {package}
             for package in SHIPPED}
    for package in SHIPPED:
        # Depth-first search from each package: reaching itself again is a cycle.
        stack, seen = list(graph[package]), set()
        while stack:
            current = stack.pop()
            assert current != package, f"import cycle through {package}: {graph}"
            if current not in seen:
                seen.add(current)
                stack.extend(graph[current])


def test_the_foundation_imports_neither_service() -> None:
    for module, names in imports_of("vaccine_queue").items():
        assert {top_level(n) for n in names} & {"queue_gate", "booking_backend"} == set(), module


def test_the_services_do_not_import_each_other() -> None:
    for service, other in (("queue_gate", "booking_backend"), ("booking_backend", "queue_gate")):
        for module, names in imports_of(service).items():
            assert other not in {top_level(n) for n in names}, module


def test_the_booking_records_live_in_postgresql_only() -> None:
    """Nothing a person must not lose lives in a store that can be flushed: the booking
    backend has no Redis client at all (issue 11: a flushed Redis loses 0 bookings)."""
    for module, names in imports_of("booking_backend").items():
        assert "redis" not in {top_level(n) for n in names}, module


def test_development_tools_are_not_shipped() -> None:
    for package in SHIPPED:
        for module, names in imports_of(package).items():
            tops = {top_level(n) for n in names}
            assert tops & {"devtools", "tests", "bench"} == set(), module
