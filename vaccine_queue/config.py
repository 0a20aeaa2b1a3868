"""Reading a service's settings from the environment, with one meaning everywhere.

Each service keeps its settings in a frozen dataclass built by `from_env`, which reads every
variable through `Env`. The rules are the same for both services:

- a variable that is unset or set to the empty string takes the default;
- flags are `1/0`, `true/false`, `yes/no` or `on/off` (any case);
- anything else that does not parse, or lies outside its bounds, stops the service with a
  `SettingsError` naming the variable, the value found and what is expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


class Env:
    """Typed reads of environment variables; every error names the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        """The variable's value, stripped; None when unset or empty."""
        value = self._environ.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def given(self, name: str) -> bool:
        return self.raw(name) is not None

    def text(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        return default if value is None else value

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise SettingsError(f"{name} must be 1/0, true/false, yes/no or on/off, not {value!r}")

    def integer(self, name: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
        _check_bounds(name, number, minimum, maximum)
        return number

    def number(self, name: str, default: float, *, minimum: float | None = None,
               maximum: float | None = None) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name} must be a number, not {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise SettingsError(f"{name} must be a finite number, not {value!r}")
        _check_bounds(name, number, minimum, maximum)
        return number

    def items(self, name: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        """A comma-separated list; blank entries are dropped."""
        value = self.raw(name)
        if value is None:
            return tuple(default)
        return tuple(part.strip() for part in value.split(",") if part.strip())

    def path(self, name: str) -> Path | None:
        value = self.raw(name)
        return None if value is None else Path(value)


def _check_bounds(name: str, value: float, minimum: float | None,
                  maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g}, not {value:g}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum:g}, not {value:g}")
