"""Redis key names of a room and the typed wrapper around the room's Lua scripts.

Redis is the single source of truth for every gate process: each atomic step is one Lua
script from `lua/`. All keys of a room share the hash tag `{room}` so a room lives on one
Redis Cluster slot. Redis errors are turned into `GateUnavailable` here, at the boundary,
so views decide what a visitor sees.
"""

from __future__ import annotations

import importlib.resources
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from queue_gate.settings import MODES, Settings

PREFIX = "qg"
ROOMS_KEY = f"{PREFIX}:rooms"
# After every gate was down, the backend gets the normal rate, not the outage's backlog.
MAX_CREDITED_ELAPSED_S = 5.0

Clock = Callable[[], float]
T = TypeVar("T")


class GateUnavailable(Exception):
    """Redis could not be reached or answered with an error."""


class RoomMissing(Exception):
    """The admin named a room that no gate has created."""


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """Every key of one room, built in one place."""

    room: str

    def _key(self, name: str) -> str:
        return f"{PREFIX}:{{{self.room}}}:{name}"

    @property
    def config(self) -> str:
        return self._key("config")

    @property
    def state(self) -> str:
        return self._key("state")

    @property
    def passes(self) -> str:
        return self._key("passes")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What operators set: the live configuration of a room."""

    rate_per_minute: int
    mode: str
    message: str
    session_minutes: int


@dataclass(frozen=True, slots=True)
class TickResult:
    """A room as one tick left it."""

    config: RoomConfig
    epoch: str
    seq: int
    frontier: int
    passes_active: int
    passes_issued: int
    now: float

    @property
    def waiting(self) -> int:
        return self.seq - self.frontier


@dataclass(frozen=True, slots=True)
class JoinResult:
    mode: str
    number: int
    frontier: int
    epoch: str


PassOutcome = Literal["issued", "again", "waiting", "spent", "stale"]


@dataclass(frozen=True, slots=True)
class PassResult:
    outcome: PassOutcome
    # The pass's expiry (unix seconds) for issued/again/spent; the frontier for waiting.
    value: int


def _script_source(name: str) -> str:
    return importlib.resources.files("queue_gate").joinpath("lua", name).read_text("utf-8")


def connect(url: str) -> aioredis.Redis:
    """A client with a bounded pool: under a rush, callers wait for a connection (briefly)
    instead of opening thousands."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=3,
        decode_responses=True,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it


class RoomStore:
    """The Redis side of one room: tick, join, passes and configuration."""

    def __init__(
        self,
        client: aioredis.Redis,
        settings: Settings,
        *,
        room: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.room = room or settings.room
        self.keys = RoomKeys(self.room)
        self._settings = settings
        # None means Redis TIME: the one clock every process on every machine agrees on.
        self._clock = clock
        self._tick = self._register("tick-3.lua")
        self._join = self._register("join-2.lua")
        self._issue_pass = self._register("issue_pass-3.lua")
        self._end_pass = self._register("end_pass-2.lua")

    def _register(self, name: str) -> AsyncScript:
        return self.client.register_script(_script_source(name))

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            raise GateUnavailable(str(exc)) from exc

    async def tick(self) -> TickResult:
        """Advance the frontier by the rate and read the room (creating it if needed)."""
        s = self._settings
        keys = [self.keys.config, self.keys.state, self.keys.passes]
        args: list[str | int | float] = [
            self._now_arg(), MAX_CREDITED_ELAPSED_S, s.ticket_max_age_s,
            s.initial_rate_per_minute, s.initial_mode, s.initial_message,
            s.initial_session_minutes, secrets.token_hex(4),
        ]
        raw: list[Any] = await self._call(lambda: self._tick(keys=keys, args=args))
        return TickResult(
            config=RoomConfig(
                rate_per_minute=int(float(raw[1])),
                mode=str(raw[0]),
                message=str(raw[2]),
                session_minutes=int(raw[3]),
            ),
            epoch=str(raw[4]),
            seq=int(raw[5]),
            frontier=int(raw[6]),
            passes_active=int(raw[7]),
            passes_issued=int(raw[8]),
            now=float(raw[9]),
        )

    async def register_room(self) -> None:
        """List the room for the admin API (a plain set, outside the room's hash slot)."""
        await self._call(lambda: self.client.sadd(ROOMS_KEY, self.room))

    async def join(self) -> JoinResult:
        """Take the next number in line: one round trip (two the first time a room is used)."""
        keys = [self.keys.config, self.keys.state]
        raw: list[Any] = await self._call(lambda: self._join(keys=keys, args=[]))
        if raw[0] == "missing":
            await self.tick()
            raw = await self._call(lambda: self._join(keys=keys, args=[]))
        return JoinResult(mode=str(raw[0]), number=int(raw[1]), frontier=int(raw[2]),
                          epoch=str(raw[3]))

    async def issue_pass(self, ticket_id: str, number: int, epoch: str) -> PassResult:
        keys = [self.keys.config, self.keys.state, self.keys.passes]
        args: list[str | int | float] = [ticket_id, number, epoch, self._now_arg()]
        raw: list[Any] = await self._call(lambda: self._issue_pass(keys=keys, args=args))
        outcome: PassOutcome = raw[0]
        return PassResult(outcome, int(raw[1]))

    async def pass_expiry(self, ticket_id: str) -> float | None:
        """The recorded expiry of the ticket's pass (earlier than signed if it was ended)."""
        score = await self._call(lambda: self.client.zscore(self.keys.passes, ticket_id))
        return None if score is None else float(score)

    async def end_pass(self, ticket_id: str) -> bool:
        keys = [self.keys.state, self.keys.passes]
        ended = await self._call(lambda: self._end_pass(keys=keys, args=[ticket_id,
                                                                         self._now_arg()]))
        return bool(ended)

    async def read_config(self) -> RoomConfig:
        raw = await self._call(lambda: self.client.hmget(
            self.keys.config, ["rate_per_minute", "mode", "message", "session_minutes"]))
        if raw[0] is None:
            raise RoomMissing(self.room)
        rate, mode, message, session = (str(value or "") for value in raw)
        return RoomConfig(int(rate), mode, message, int(session or 15))

    async def read_room(self) -> tuple[RoomConfig, dict[str, int]]:
        """Configuration and counters, read without ticking (for the admin API)."""
        config = await self.read_config()

        async def counters() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(self.keys.state, ["seq", "frontier", "passes_issued", "passes_ended"])
                pipe.time()
                return await pipe.execute()

        (seq, frontier, issued, ended), (secs, micros) = await self._call(counters)
        now = self._clock() if self._clock is not None else secs + micros / 1e6
        active = await self._call(lambda: self.client.zcount(self.keys.passes, f"({now}", "+inf"))
        tickets, admitted = int(seq or 0), int(frontier or 0)
        return config, {
            "tickets_issued": tickets,
            "admitted": admitted,
            "waiting": tickets - admitted,
            "passes_issued": int(issued or 0),
            "passes_ended": int(ended or 0),
            "passes_active": int(active),
        }

    async def update_config(self, changes: dict[str, str | int]) -> RoomConfig:
        """Write validated changes; every gate process picks them up at its next tick."""
        assert changes.get("mode", "queue") in MODES
        await self.read_config()  # a room must exist before it is changed
        fields = list(changes.items())
        await self._call(lambda: self.client.hset(self.keys.config, items=[
            part for field_value in fields for part in field_value]))
        return await self.read_config()


async def known_rooms(client: aioredis.Redis) -> list[str]:
    try:
        rooms = await client.smembers(ROOMS_KEY)
    except (RedisError, OSError) as exc:
        raise GateUnavailable(str(exc)) from exc
    return sorted(str(room) for room in rooms)
