"""Invitation codes: letters sent in waves by age group (Bremen's way of avoiding a rush).

Only an HMAC of each code is stored; the codes themselves are returned once, to be printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from booking_backend.identity import IdentityHasher, is_code, new_code
from booking_backend.store import Store

Clock = Callable[[], float]
CODE_GROUPS = 3  # XXXX-XXXX-XXXX: 60 bits, unguessable even by the million


@dataclass(frozen=True, slots=True)
class Wave:
    name: str
    min_age: int
    count: int
    created: int


class Invitations:
    def __init__(self, store: Store, hasher: IdentityHasher, clock: Clock) -> None:
        self._store = store
        self._hasher = hasher
        self._clock = clock

    async def create_wave(self, name: str, min_age: int, count: int) -> tuple[Wave, list[str]]:
        wave = Wave(name, min_age, count, int(self._clock()))
        codes = [new_code(CODE_GROUPS) for _ in range(count)]
        async with self._store.guard():
            pipe = self._store.redis.pipeline(transaction=False)
            pipe.hset(self._store.keys.waves, name, json.dumps(
                {"min_age": min_age, "count": count, "created": wave.created}))
            for chunk in range(0, len(codes), 1000):
                mapping: dict[Any, Any] = {
                    self._hasher.invitation(c): name for c in codes[chunk : chunk + 1000]
                }
                pipe.hset(self._store.keys.invitations, mapping=mapping)
            await pipe.execute()
        return wave, codes

    async def wave_of(self, code: str) -> Wave | None:
        """The wave a code belongs to, or None for an unknown or malformed code."""
        if not is_code(code, CODE_GROUPS):
            return None
        name = await self._store.hget(self._store.keys.invitations, self._hasher.invitation(code))
        if name is None:
            return None
        raw = await self._store.hget(self._store.keys.waves, name)
        if raw is None:
            return None
        data = json.loads(raw)
        return Wave(name, int(data["min_age"]), int(data["count"]), int(data["created"]))

    async def waves(self) -> list[Wave]:
        raw = await self._store.hgetall(self._store.keys.waves)
        result = []
        for name, value in sorted(raw.items()):
            data = json.loads(value)
            result.append(Wave(name, int(data["min_age"]), int(data["count"]),
                               int(data["created"])))
        return result
