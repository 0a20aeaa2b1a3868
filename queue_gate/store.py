"""Redis key names of a room and the typed wrapper around the room's Lua scripts.

Redis is the single source of truth for every gate process: each atomic step is one Lua
script from `lua/`. All keys of a room share the hash tag `{room}` so a room lives on one
Redis Cluster slot. Redis errors are turned into `GateUnavailable` here, at the boundary,
so views decide what a visitor sees.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
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
# Most ticket numbers one tick examines: bounds the script's run time when a long stretch
# of the line has left (the rest are reached by the next ticks).
WALK_LIMIT = 2000
# Most joins sent in one script call.
JOIN_BATCH_MAX = 256

Clock = Callable[[], float]
T = TypeVar("T")


class GateUnavailable(Exception):
    """Redis could not be reached or answered with an error."""


class RoomMissing(Exception):
    """The admin named a room that no gate has created."""


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """Every key of one room, built in one place (see lua/_room.lua for their contents)."""

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

    @property
    def room_scripts(self) -> list[str]:
        """The key list every room script takes, in the order lua/_room.lua names."""
        return [
            self.config, self.state, self.passes,
            self._key("seen:0"), self._key("seen:1"), self._key("seen:2"),
            self._key("skipped"), self._key("returners"), self._key("requeued"),
            self._key("prequeue"), self._key("drawn"),
        ]

    def joins(self, window: int) -> str:
        """Joins per address in join-limit window number `window`."""
        return self._key(f"joins:{window}")

    def pass_browsers(self, ticket_id: str) -> str:
        return self._key(f"pfp:{ticket_id}")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What operators set: the live configuration of a room."""

    rate_per_minute: int
    mode: str
    message: str
    session_minutes: int
    # When the room opens (unix seconds); arrivals before it wait in the pre-queue.
    opens_at: float | None = None
    # Admissions pause while this many passes are active; 0 means no cap.
    max_active_sessions: int = 0


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
    admitted: int = 0
    skipped: int = 0
    prequeue_size: int = 0
    draw_opens_at: float | None = None
    draw_base: int = 0
    draw_count: int = 0
    passes_ended: int = 0

    @property
    def waiting(self) -> int:
        """Numbered visitors not yet reached by the frontier (some may have left)."""
        return self.seq - self.frontier


@dataclass(frozen=True, slots=True)
class JoinResult:
    # queue | paused | passthrough: numbered; prequeue: before opening; closed; limited
    mode: str
    number: int
    frontier: int
    epoch: str
    opens_at: float | None = None
    retry_after_s: int = 0


PassOutcome = Literal["issued", "again", "waiting", "requeued", "full", "spent", "stale"]


@dataclass(frozen=True, slots=True)
class PassResult:
    outcome: PassOutcome
    # The pass's expiry (unix seconds) for issued/again/spent; the frontier for waiting;
    # the place among returners for requeued.
    value: int


@dataclass(frozen=True, slots=True)
class DrawPlace:
    outcome: Literal["drawn", "prequeue", "stale"]
    number: int
    base: int


@dataclass(slots=True)
class _PendingJoin:
    ticket_id: str
    address: str | None
    result: asyncio.Future[JoinResult]


def _join_result(raw: list[Any]) -> JoinResult:
    if raw[0] == "limited":
        return JoinResult("limited", 0, 0, "", retry_after_s=max(int(raw[1]), 1))
    if raw[0] == "prequeue":
        return JoinResult("prequeue", 0, 0, str(raw[3]), opens_at=float(raw[2]))
    return JoinResult(mode=str(raw[0]), number=int(raw[1]), frontier=int(raw[2]),
                      epoch=str(raw[3]))


def _script_source(name: str, *, room_lib: bool) -> str:
    """A script's text after the shared helpers: lua/_clock.lua for every script, and
    lua/_room.lua for the room scripts (those taking the room's whole key list)."""
    lua = importlib.resources.files("queue_gate").joinpath("lua")
    parts = ["_clock.lua", *(["_room.lua"] if room_lib else []), name]
    return "\n".join(lua.joinpath(part).read_text("utf-8") for part in parts)


def connect(url: str, *, max_connections: int, wait_s: float) -> aioredis.Redis:
    """A client with a bounded pool: under a rush, callers wait up to `wait_s` for a
    connection instead of opening thousands; past that they get `GateUnavailable`."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_s,
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
        self._tick = self._register("tick-11.lua", room_lib=True)
        self._join = self._register("join-12.lua", room_lib=True)
        self._joins: list[_PendingJoin] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._issue_pass = self._register("issue_pass-11.lua", room_lib=True)
        self._draw_place = self._register("draw_place-11.lua", room_lib=True)
        self._check_pass = self._register("check_pass-2.lua", room_lib=False)
        self._end_pass = self._register("end_pass-2.lua", room_lib=False)

    def _register(self, name: str, *, room_lib: bool) -> AsyncScript:
        return self.client.register_script(_script_source(name, room_lib=room_lib))

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            raise GateUnavailable(str(exc)) from exc

    async def tick(self, seen: Sequence[int] = ()) -> TickResult:
        """Admit at the rate, mark `seen` numbers present, read the room (creating it)."""
        s = self._settings
        args: list[str | int | float] = [
            self._now_arg(), MAX_CREDITED_ELAPSED_S, s.ticket_max_age_s, s.abandon_grace_s,
            s.draw_grace_s, WALK_LIMIT,
            s.initial_rate_per_minute, s.initial_mode, s.initial_message,
            s.initial_session_minutes, secrets.token_hex(4), *seen,
        ]
        raw: list[Any] = await self._call(
            lambda: self._tick(keys=self.keys.room_scripts, args=args))
        return TickResult(
            config=RoomConfig(
                rate_per_minute=int(float(raw[1])),
                mode=str(raw[0]),
                message=str(raw[2]),
                session_minutes=int(raw[3]),
                opens_at=float(raw[12]) if raw[12] else None,
                max_active_sessions=int(raw[14]),
            ),
            epoch=str(raw[4]),
            seq=int(raw[5]),
            frontier=int(raw[6]),
            passes_active=int(raw[7]),
            passes_issued=int(raw[8]),
            now=float(raw[9]),
            admitted=int(raw[10]),
            skipped=int(raw[11]),
            prequeue_size=int(raw[13]),
            draw_opens_at=float(raw[15]) if raw[15] else None,
            draw_base=int(raw[16]),
            draw_count=int(raw[17]),
            passes_ended=int(raw[18]),
        )

    async def register_room(self) -> None:
        """List the room for the admin API (a plain set, outside the room's hash slot)."""
        await self._call(lambda: self.client.sadd(ROOMS_KEY, self.room))

    async def join(self, ticket_id: str, *, address: str | None = None) -> JoinResult:
        """Take a place. Joins arriving together share one round trip (see `_flush_joins`);
        the first join of a room that does not exist yet costs a tick more.

        `address` is the network address to count against the join limit; None for
        trusted networks."""
        pending = _PendingJoin(ticket_id, address,
                               asyncio.get_running_loop().create_future())
        self._joins.append(pending)
        if len(self._joins) == 1:
            # Everything queued until the loop comes round again goes in the same call.
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await pending.result

    def _start_flush(self) -> None:
        batch, self._joins = self._joins[:JOIN_BATCH_MAX], self._joins[JOIN_BATCH_MAX:]
        if self._joins:
            asyncio.get_running_loop().call_soon(self._start_flush)
        task = asyncio.get_running_loop().create_task(self._flush_joins(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush_joins(self, batch: list[_PendingJoin]) -> None:
        s = self._settings
        # Fixed windows of the join limit, by this process's clock: processes whose clocks
        # differ by a second split a boundary's counts, which a generous limit absorbs.
        now = self._clock() if self._clock is not None else time.time()
        window, into = divmod(now, s.join_window_s)
        keys = [*self.keys.room_scripts, self.keys.joins(int(window))]
        args: list[str | int | float] = [self._now_arg(), math.ceil(s.join_window_s - into),
                                         s.abandon_grace_s]
        for join in batch:
            draw_key = secrets.randbits(52) / (1 << 52)
            args += [join.ticket_id, repr(draw_key),
                     s.join_limit if join.address is not None else 0, join.address or "-"]
        try:
            raw: list[Any] = await self._call(lambda: self._join(keys=keys, args=args))
            if raw[0] == "missing":
                await self.tick()
                raw = await self._call(lambda: self._join(keys=keys, args=args))
        except GateUnavailable as exc:
            for join in batch:
                if not join.result.done():
                    join.result.set_exception(GateUnavailable(str(exc)))
            return
        for i, join in enumerate(batch):
            if not join.result.done():  # its request may have been cancelled meanwhile
                join.result.set_result(_join_result(raw[4 * i: 4 * i + 4]))

    async def issue_pass(self, ticket_id: str, number: int, epoch: str) -> PassResult:
        args: list[str | int | float] = [ticket_id, number, epoch, self._now_arg()]
        raw: list[Any] = await self._call(
            lambda: self._issue_pass(keys=self.keys.room_scripts, args=args))
        outcome: PassOutcome = raw[0]
        return PassResult(outcome, int(raw[1]))

    async def draw_place(self, ticket_id: str, opens_at: int) -> DrawPlace:
        """The number a pre-queue ticket drew at opening (or that the draw is still ahead)."""
        args: list[str | int | float] = [ticket_id, opens_at, self._now_arg()]
        raw: list[Any] = await self._call(
            lambda: self._draw_place(keys=self.keys.room_scripts, args=args))
        return DrawPlace(raw[0], int(raw[1]), int(raw[2]))

    async def check_pass(self, ticket_id: str, fingerprint: str) -> tuple[str, int]:
        """("ok", expiry), ("ended", 0) or ("shared", browsers): see lua/check_pass-2.lua."""
        keys = [self.keys.passes, self.keys.pass_browsers(ticket_id)]
        args: list[str | int | float] = [
            ticket_id, fingerprint, self._settings.pass_max_browsers, self._now_arg()]
        raw: list[Any] = await self._call(lambda: self._check_pass(keys=keys, args=args))
        return str(raw[0]), int(raw[1])

    async def end_pass(self, ticket_id: str) -> bool:
        keys = [self.keys.state, self.keys.passes]
        ended = await self._call(lambda: self._end_pass(keys=keys, args=[ticket_id,
                                                                         self._now_arg()]))
        return bool(ended)

    async def read_config(self) -> RoomConfig:
        raw = await self._call(lambda: self.client.hmget(
            self.keys.config,
            ["rate_per_minute", "mode", "message", "session_minutes", "opens_at", "max_active"]))
        if raw[0] is None:
            raise RoomMissing(self.room)
        rate, mode, message, session, opens_at, max_active = (str(v or "") for v in raw)
        return RoomConfig(int(rate), mode, message, int(session or 15),
                          float(opens_at) if opens_at else None, int(max_active or 0))

    async def read_room(self) -> tuple[RoomConfig, dict[str, int]]:
        """Configuration and counters, read without ticking (for the admin API)."""
        config = await self.read_config()

        async def counters() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(self.keys.state, ["seq", "frontier", "admitted", "skipped",
                                             "passes_issued", "passes_ended"])
                pipe.zcard(self.keys.room_scripts[9])
                pipe.llen(self.keys.room_scripts[7])
                pipe.time()
                return await pipe.execute()

        state, prequeue, returners, (secs, micros) = await self._call(counters)
        seq, frontier, admitted, skipped, issued, ended = (int(v or 0) for v in state)
        now = self._clock() if self._clock is not None else secs + micros / 1e6
        active = await self._call(lambda: self.client.zcount(self.keys.passes, f"({now}", "+inf"))
        return config, {
            "tickets_issued": seq,
            "frontier": frontier,
            "admitted": admitted,
            "left_while_waiting": skipped,
            "waiting": seq - frontier + int(returners),
            "prequeue": int(prequeue),
            "passes_issued": issued,
            "passes_ended": ended,
            "passes_active": int(active),
        }

    async def update_config(self, changes: dict[str, str | int | float | None]) -> RoomConfig:
        """Write validated changes (None deletes a field); every gate process picks them up
        at its next tick."""
        assert changes.get("mode", "queue") in MODES
        opens_at = changes.get("opens_at")
        if isinstance(opens_at, float):
            # Whole seconds: tickets carry the opening as an integer (and never open early).
            changes = {**changes, "opens_at": math.ceil(opens_at)}
        await self.read_config()  # a room must exist before it is changed
        setting = [part for name, value in changes.items() if value is not None
                   for part in (name, value)]
        clearing = [name for name, value in changes.items() if value is None]

        async def write() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                if setting:
                    pipe.hset(self.keys.config, items=setting)
                if clearing:
                    pipe.hdel(self.keys.config, *clearing)
                await pipe.execute()

        await self._call(write)
        return await self.read_config()


async def known_rooms(client: aioredis.Redis) -> list[str]:
    try:
        rooms = await client.smembers(ROOMS_KEY)
    except (RedisError, OSError) as exc:
        raise GateUnavailable(str(exc)) from exc
    return sorted(str(room) for room in rooms)
