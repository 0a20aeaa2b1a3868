"""One loader for the Lua scripts of both services, and one way to read their replies.

Scripts live as files in a package's `lua/` folder, one script per file, named for what
it does and how many keys it takes (`tick-11.lua`). A line `--!include _lib.lua` pastes
a shared file of the same folder in its place (each file once per script), so helpers are
written once and every script stays one `EVALSHA`.

Every script returns named fields as a flat list `{"name", value, "name", value, ...}`, or
(for a large reply read often, where one string is much cheaper for the client to read
than many list items) as one `cjson.encode`d object; `Reply` reads them by name either way,
so nobody counts positions (`raw[13]`).
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from importlib.resources.abc import Traversable

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

_INCLUDE = re.compile(r"^--!include (\S+)[ \t]*$", re.MULTILINE)


class ScriptError(RuntimeError):
    """A script's source or reply is not what its header promises: a bug, not bad input."""


def script_source(package: str, name: str) -> str:
    """The text of `lua/<name>` in `package`, with its `--!include` lines pasted in."""
    folder = importlib.resources.files(package).joinpath("lua")
    return _expand(folder, name, set())


def _expand(folder: Traversable, name: str, seen: set[str]) -> str:
    if "/" in name or name.startswith("."):
        raise ScriptError(f"include {name!r}: only files of the same lua/ folder")
    source = folder.joinpath(name).read_text(encoding="utf-8")

    def paste(match: re.Match[str]) -> str:
        included = match.group(1)
        if included in seen:
            return f"-- ({included} included above)"
        seen.add(included)
        return _expand(folder, included, seen)

    return _INCLUDE.sub(paste, source)


def register(client: aioredis.Redis | RedisCluster, package: str, name: str) -> AsyncScript:
    """Register a script once per client: redis-py runs it by EVALSHA and loads it again
    by itself when the server answers NOSCRIPT (after a restart or a failover)."""
    return client.register_script(script_source(package, name))


def _json_fields(raw: bytes | str, script: str) -> dict[str, str]:
    """A reply of one JSON object, as text fields (whole numbers without a decimal point)."""
    try:
        found = json.loads(raw)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise ScriptError(f"{script} returned {raw[:200]!r}, not named fields")
    return {str(name): str(int(value)) if isinstance(value, float) and value.is_integer()
            else _text(value) for name, value in found.items()}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


class Reply(Mapping[str, str]):
    """A script's reply of named fields, read by name with the type the caller expects.

    Redis turns Lua numbers into integers (floats are sent as strings by the scripts), and
    `nil` ends a list; scripts therefore send absent values as "" and `optional_float`
    reads "" as None."""

    __slots__ = ("_fields", "_script")

    def __init__(self, raw: object, script: str = "script") -> None:
        self._script = script
        if isinstance(raw, bytes | str):
            self._fields = _json_fields(raw, script)
            return
        if not isinstance(raw, list | tuple) or len(raw) % 2:
            raise ScriptError(f"{script} returned {raw!r}, not a list of name/value pairs")
        items: Sequence[object] = raw
        self._fields = {_text(items[i]): _text(items[i + 1]) for i in range(0, len(items), 2)}

    def __getitem__(self, name: str) -> str:
        try:
            return self._fields[name]
        except KeyError:
            raise ScriptError(f"{self._script} returned no field {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._fields.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Reply({self._script}, {self._fields!r})"

    def text(self, name: str) -> str:
        return self[name]

    def integer(self, name: str) -> int:
        value = self[name]
        try:
            return int(value)
        except ValueError:
            return int(float(value))

    def number(self, name: str) -> float:
        return float(self[name])

    def optional_number(self, name: str) -> float | None:
        value = self._fields.get(name, "")
        return float(value) if value not in ("", "false") else None

    def flag(self, name: str) -> bool:
        return self[name] not in ("", "0", "false")
