"""Redis key names of a room and the typed wrapper around the room's Lua scripts.

Redis is the single source of truth for every gate process: each atomic step is one Lua
script from `lua/`, loaded by `vaccine_queue.lua`. Every key a script touches arrives in its
KEYS (built here, by `RoomKeys`, never inside a script), and every script answers with named
fields, read here by name. All keys of a room share the hash tag `{room}` so a room lives on
one Redis Cluster slot, which is where Redis Cluster sends the room's scripts.

One key stands outside every room's slot: the registry of rooms `qg:rooms`, a plain set
that `register_room` writes and `known_rooms` reads for the admin API. It lists all rooms,
so no single room's hash tag fits it; it is a key of its own, which a cluster client routes
to whichever node holds its slot. No script and no pipeline names it together with a room's
keys (the scripts' keys are checked by tests/test_lua_scripts.py), so no command ever spans
two slots: only `SADD` and `SMEMBERS` touch it.

Three ways to reach Redis, each with redis-py's own client (`connect`): one instance
(`REDIS_URL`), a master found through Sentinel, or a Redis Cluster.

A place, a pass or an admission is handed out only once a replica has it (when the master
has one): a failover must not lose what visitors were given (`_Script._run_replicated`,
docs/architecture.md "Failover").

Redis errors are turned into `GateUnavailable` here, at the boundary, so views decide what
a visitor sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from queue_gate import controller
from queue_gate.settings import MODES, Settings
from vaccine_queue.lua import Reply, ScriptError, register

log = logging.getLogger(__name__)

PREFIX = "qg"
ROOMS_KEY = f"{PREFIX}:rooms"
# After every gate was down, the backend gets the normal rate, not the outage's backlog.
MAX_CREDITED_ELAPSED_S = 5.0
# Most ticket numbers one tick examines: bounds the script's run time when a long stretch
# of the line has left (the rest are reached by the next ticks).
WALK_LIMIT = 2000
# Most joins sent in one script call.
JOIN_BATCH_MAX = 256
# How long a place, a pass or an admission waits for a replica to confirm it.
REPLICA_WAIT_MS = 200
# Numbers added to a lost room's last known `seq` when a gate re-creates it: joins other
# processes handed out after that snapshot. A number nobody holds is never seen polling and
# is passed over without using an admission.
RESEED_MARGIN = 1000
# Most entries a room's audit list keeps (configure-2.lua drops older ones).
AUDIT_KEEP = 10_000
# Most pending entries of a room's schedule (the admin API refuses more).
SCHEDULE_MAX = 100

Clock = Callable[[], float]
T = TypeVar("T")
# A single instance's or Sentinel's master's client, or a cluster's.
RedisClient = aioredis.Redis | RedisCluster


class GateUnavailable(Exception):
    """Redis could not be reached or answered with an error."""


class RoomMissing(Exception):
    """The admin named a room that no gate has created."""


class ScheduleConflict(Exception):
    """The room's schedule changed after the caller read it."""


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """Every key of one room, built in one place (lua/_room.lua says what each holds), and
    the KEYS of each script in the order its header names them."""

    room: str
    # KEYS of tick, issue_pass and draw_place (join adds one): built once, sent often.
    room_script_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "room_script_keys", (
            self.config, self.state, self.passes, self.seen(0), self.seen(1), self.seen(2),
            self.skipped, self.returners, self.requeued, self.prequeue, self.drawn))

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

    def seen(self, bucket: int) -> str:
        """Numbers seen in presence bucket `bucket` (0, 1, 2: the buckets take turns)."""
        return self._key(f"seen:{bucket}")

    @property
    def presence_script_keys(self) -> tuple[str, ...]:
        return (self.seen(0), self.seen(1), self.seen(2), self._key("seen:scratch"))

    @property
    def skipped(self) -> str:
        return self._key("skipped")

    @property
    def returners(self) -> str:
        return self._key("returners")

    @property
    def requeued(self) -> str:
        return self._key("requeued")

    @property
    def prequeue(self) -> str:
        return self._key("prequeue")

    @property
    def drawn(self) -> str:
        return self._key("drawn")

    @property
    def audit(self) -> str:
        """Operators' changes, newest first (configure-2.lua writes them)."""
        return self._key("audit")

    @property
    def configure_script_keys(self) -> tuple[str, ...]:
        return (self.config, self.audit)

    @property
    def schedule(self) -> str:
        """Pending timed changes, by time (lua/_schedule.lua)."""
        return self._key("schedule")

    @property
    def schedule_script_keys(self) -> tuple[str, ...]:
        """KEYS of set_schedule-3.lua and apply_schedule-3.lua."""
        return (self.config, self.audit, self.schedule)

    def joins(self, window: int) -> str:
        """Joins per address in join-limit window number `window`."""
        return self._key(f"joins:{window}")

    def pass_browsers(self, ticket_id: str) -> str:
        return self._key(f"pfp:{ticket_id}")

    @property
    def challenges(self) -> str:
        """Ids of used proof-of-work challenges, with their expiry."""
        return self._key("challenges")

    @property
    def draws(self) -> str:
        """Pre-queue entries per address for the coming opening."""
        return self._key("draws")

    def join_script_keys(self, window: int) -> tuple[str, ...]:
        return (*self.room_script_keys, self.joins(window), self.challenges, self.draws)

    def check_pass_script_keys(self, ticket_id: str) -> tuple[str, ...]:
        return (self.passes, self.pass_browsers(ticket_id), self.state)

    @property
    def end_pass_script_keys(self) -> tuple[str, ...]:
        return (self.state, self.passes)

    @property
    def agents(self) -> str:
        """Call-centre agents' passes: id -> expiry (issue_agent_pass-4.lua)."""
        return self._key("agents")

    def agent(self, pass_id: str) -> str:
        """One agent pass's record: agent, issued_by, issued_at, expires_at, last_used."""
        return self._key(f"agent:{pass_id}")

    def issue_agent_pass_script_keys(self, pass_id: str) -> tuple[str, ...]:
        return (self.config, self.agents, self.agent(pass_id), self.audit)

    def check_agent_pass_script_keys(self, pass_id: str) -> tuple[str, ...]:
        return (self.agents, self.agent(pass_id), self.pass_browsers(pass_id))

    def revoke_agent_pass_script_keys(self, pass_id: str) -> tuple[str, ...]:
        return (self.agents, self.agent(pass_id), self.pass_browsers(pass_id), self.audit)

    @property
    def health(self) -> str:
        """Each gate process's newest verdict on the backend (adaptive admission)."""
        return self._key("health")

    @property
    def health_script_keys(self) -> tuple[str, ...]:
        return (self.config, self.state, self.health)

    @property
    def notify_script_keys(self) -> tuple[str, ...]:
        """KEYS of the turn-message scripts (lua/_notify.lua says what each holds)."""
        return tuple(self._key(f"notify:{name}") for name in
                     ("contacts", "due", "claims", "keep", "forget", "numbers"))

    def restored(self, ticket_id: str) -> str:
        """Set once the ticket's restore link was used (a link works once)."""
        return self._key(f"notify:restored:{ticket_id}")


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
    # Proof of work asked of a new visitor, in leading zero bits of SHA-256; 0 means none.
    challenge_bits: int = 0
    # It rises by a bit per doubling of the join rate above challenge_join_rate (joins per
    # minute), up to challenge_bits_max; 0 for either: it does not rise.
    challenge_bits_max: int = 0
    challenge_join_rate: int = 0
    # Adaptive admission: "fixed" admits at rate_per_minute; "adaptive" at an effective
    # rate between rate_min and rate_max that follows the backend's health (health.py).
    rate_mode: str = "fixed"
    rate_min: int = 0
    rate_max: int = 0
    # The requests the room covers: a JSON list of {host, path, action} in canonical form
    # ("" for none), read by `queue_gate.rooms.parse_routes`.
    routes: str = ""


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
    # When Redis last lost the room and a gate re-created it from its snapshot.
    reseeded_at: float | None = None
    # The rate this tick admitted at (the configured one in fixed mode), and whether the
    # room's decision says the backend answers nothing (adaptive mode only).
    effective_rate: float = 0.0
    backend_down: bool = False
    # The room's schedule: when its earliest pending entry is due (None: nothing pending),
    # and a number that changes whenever the pending list does.
    schedule_next: float | None = None
    schedule_version: int = 0
    # The proof of work asked of new visitors now (config.challenge_bits, risen with the
    # join rate), and the join rate it follows (joins per minute, room-wide).
    challenge_bits_now: int = 0
    join_rate: float = 0.0

    @property
    def waiting(self) -> int:
        """Numbered visitors not yet reached by the frontier (some may have left)."""
        return self.seq - self.frontier


@dataclass(frozen=True, slots=True)
class HealthDecision:
    """The room's adaptive rate as health-3.lua left it."""

    rate_mode: str
    effective_rate: float
    backend: str  # up | down ("" in fixed mode)
    decided: bool


ScheduleValue = str | int | float | None


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    """One entry of a room's schedule: at `at` (unix seconds), `changes` are applied as an
    operator's change would be (in the config hash's names; None removes a field)."""

    at: float
    changes: dict[str, ScheduleValue]
    id: str = ""
    by: str = ""

    def member(self) -> str:
        """The entry as the schedule's sorted set holds it: JSON, values as text."""
        return json.dumps({"id": self.id, "at": self.at, "by": self.by,
                           "set": {name: _stored(name, value)
                                   for name, value in self.changes.items()}},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_member(cls, member: str) -> ScheduledChange | None:
        """An entry read back (None for one that does not read as one)."""
        try:
            raw = json.loads(member)
            changes = {str(name): None if value is None else str(value)
                       for name, value in dict(raw["set"]).items()}
            return cls(float(raw["at"]), dict(changes), str(raw["id"]), str(raw["by"]))
        except (ValueError, KeyError, TypeError):
            return None


def _stored(name: str, value: ScheduleValue) -> str | None:
    """A config value as the config hash holds it (opening times in whole seconds, as
    `RoomStore.change_config` writes them)."""
    if value is None:
        return None
    if name == "opens_at" and isinstance(value, float):
        return str(math.ceil(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class ScheduleApplied:
    """What one apply_schedule-3.lua call did: the entries it applied (id, and the names
    of the fields whose value changed) and the earliest pending time after it."""

    applied: tuple[tuple[str, tuple[str, ...]], ...]
    schedule_next: float | None


@dataclass(frozen=True, slots=True)
class JoinResult:
    # queue | paused | passthrough: numbered; prequeue: before opening; closed; limited;
    # draw_limited: the address used up its pre-queue entries; challenge_used
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
class LineMemory:
    """The highest number this process knows was handed out in the room's epoch: its own
    joins and its snapshots. A room that comes back with a lower `seq` is raised above it
    (a promoted replica that lacks the last joins must not give those numbers again)."""

    epoch: str = ""
    seq: int = 0

    def saw(self, epoch: str, number: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.seq = epoch, number
        elif number > self.seq:
            self.seq = number


@dataclass(slots=True)
class _PendingJoin:
    ticket_id: str
    address: str | None
    result: asyncio.Future[JoinResult]
    # A solved proof-of-work challenge: its id and expiry, accepted once by the script.
    challenge: tuple[str, int] | None = None


# The field that goes with each outcome of issue_pass-11.lua and check_pass-3.lua.
_PASS_VALUE: dict[str, str | None] = {
    "issued": "expires_at", "again": "expires_at", "spent": "expires_at",
    "waiting": "frontier", "requeued": "returners_ahead", "full": None, "stale": None,
    "missing": None,
}
_CHECK_VALUE: dict[str, str | None] = {"ok": "expires_at", "shared": "browsers", "ended": None}


@dataclass(frozen=True, slots=True)
class AgentPassIssued:
    """issue_agent_pass-4.lua's answer: "issued" (expires_at, active), "full" (active)."""

    outcome: Literal["issued", "full"]
    expires_at: int
    active: int


@dataclass(frozen=True, slots=True)
class AgentPassRecord:
    """An active agent pass as the operators' list shows it (times in unix seconds)."""

    pass_id: str
    agent: str
    issued_by: str
    issued_at: float
    expires_at: int
    last_used: float | None


def _outcome_value(reply: Reply, values: dict[str, str | None]) -> tuple[str, int]:
    """A reply's outcome and the number that goes with it (0 for outcomes without one)."""
    outcome = reply.text("outcome")
    if outcome not in values:
        raise ScriptError(f"unknown outcome in {reply!r}")
    field = values[outcome]
    return outcome, reply.integer(field) if field else 0


def _more_settings(config: RoomConfig) -> list[tuple[str, str | int]]:
    """The room's settings beyond tick-11.lua's fixed creation arguments, as the config
    hash names them: what a room re-created from a snapshot must keep."""
    more: list[tuple[str, str | int]] = [
        ("challenge_bits", config.challenge_bits),
        ("challenge_bits_max", config.challenge_bits_max),
        ("challenge_join_rate", config.challenge_join_rate), ("rate_mode", config.rate_mode),
        ("rate_min", config.rate_min), ("rate_max", config.rate_max)]
    return more + ([("routes", config.routes)] if config.routes else [])


def _tick_result(reply: Reply) -> TickResult:
    """The room as tick-11.lua reports it."""
    return TickResult(
        config=RoomConfig(
            rate_per_minute=reply.integer("rate_per_minute"),
            mode=reply.text("mode"),
            message=reply.text("message"),
            session_minutes=reply.integer("session_minutes"),
            opens_at=reply.optional_number("opens_at"),
            max_active_sessions=reply.integer("max_active"),
            challenge_bits=reply.integer("challenge_bits"),
            challenge_bits_max=reply.integer("challenge_bits_max"),
            challenge_join_rate=reply.integer("challenge_join_rate"),
            rate_mode=reply.text("rate_mode"),
            rate_min=round(reply.number("rate_min")),
            rate_max=round(reply.number("rate_max")),
            routes=reply.text("routes"),
        ),
        epoch=reply.text("epoch"),
        seq=reply.integer("seq"),
        frontier=reply.integer("frontier"),
        passes_active=reply.integer("passes_active"),
        passes_issued=reply.integer("passes_issued"),
        now=reply.number("now"),
        admitted=reply.integer("admitted"),
        skipped=reply.integer("skipped"),
        prequeue_size=reply.integer("prequeue_size"),
        draw_opens_at=reply.optional_number("draw_opens_at"),
        draw_base=reply.integer("draw_base"),
        draw_count=reply.integer("draw_count"),
        passes_ended=reply.integer("passes_ended"),
        reseeded_at=reply.optional_number("reseeded_at"),
        effective_rate=reply.number("effective_rate"),
        backend_down=reply.text("backend") == "down",
        schedule_next=reply.optional_number("schedule_next"),
        schedule_version=reply.integer("schedule_version"),
        challenge_bits_now=reply.integer("challenge_bits_now"),
        join_rate=reply.number("join_rate"),
    )


def _join_result(fields: dict[str, Any]) -> JoinResult:
    """One join's object from join-14.lua's `joins` array."""
    mode = str(fields["mode"])
    if mode in ("limited", "draw_limited"):
        return JoinResult(mode, 0, 0, "", retry_after_s=max(int(fields["retry_after_s"]), 1))
    if mode == "challenge_used":
        return JoinResult(mode, 0, 0, "")
    if mode == "prequeue":
        return JoinResult("prequeue", 0, 0, str(fields["epoch"]),
                          opens_at=float(fields["opens_at"]))
    return JoinResult(mode=mode, number=int(fields.get("number", 0)),
                      frontier=int(fields["frontier"]), epoch=str(fields["epoch"]))


def _join_results(reply: Reply, count: int) -> list[JoinResult]:
    try:
        results = [_join_result(fields) for fields in json.loads(reply.text("joins"))]
    except (ValueError, KeyError, TypeError) as exc:
        raise ScriptError(f"join-14.lua: unreadable joins in {reply!r}") from exc
    if len(results) != count:
        raise ScriptError(f"join-14.lua answered {len(results)} of {count} joins")
    return results


class NotReplicated(GateUnavailable):
    """The master has a replica, and it did not confirm the write in time: the caller must
    not hand out what the write promised (a place, a pass), which a failover could lose."""


@dataclass(slots=True)
class _Replicas:
    """How many replicas the master had at the last look (ROLE after each confirmed
    write); None before the first. WAIT is sent only when there were some: on a master
    without replicas it would block for its whole timeout.

    On a cluster, also the link to the master of the room's slot: WAIT counts the writes of
    the connection it is sent on, and the cluster client's pipelines neither take WAIT nor
    promise one connection, so the replicated scripts go to that node over a small client
    of its own (the room lives in one slot: one node at a time)."""

    connected: int | None = None
    node: str | None = None
    link: aioredis.Redis | None = None
    relearning: asyncio.Future[None] | None = None
    # Links replaced after a failure, closed once the calls still on them are over.
    retired: set[aioredis.Redis] = field(default_factory=set)
    retiring: set[asyncio.Future[None]] = field(default_factory=set)

    async def link_to(self, cluster: RedisCluster, key: str) -> aioredis.Redis:
        """A client of the node the cluster client names master of `key`'s slot, made
        again when that changes (a failover: the new master's replicas are counted anew)."""
        await cluster.initialize()  # the layout, learned on a new client's first call
        node = cluster.get_node_from_key(key)
        if node is None:
            raise GateUnavailable(f"the cluster knows no master for the slot of {key}")
        if self.link is None or node.name != self.node:
            self.close_link()
            pool = aioredis.ConnectionPool(connection_class=node.connection_class,
                                           max_connections=NODE_LINK_CONNECTIONS,
                                           **node.connection_kwargs)
            self.link, self.node, self.connected = aioredis.Redis.from_pool(pool), \
                node.name, None
        return self.link

    def relearn(self, cluster: RedisCluster, key: str) -> None:
        """Have the cluster client ask about `key` in the background (it follows MOVED, or
        notes a dead node and reads the layout again), one question at a time: the failed
        call answers "busy, retry" at once instead of waiting for the cluster's retries."""
        if self.relearning is None or self.relearning.done():
            self.relearning = asyncio.ensure_future(_ask_about(cluster, key))

    def close_link(self) -> None:
        """Stop using the link. It is closed only after `LINK_RETIRE_S`: closing a pool
        disconnects the connections in use too, and a call still connecting or writing on
        one then fails inside redis-py (an AttributeError, no Redis error), which left a
        batch of joins unanswered."""
        if self.link is not None:
            link, self.link = self.link, None
            self.retired.add(link)
            task = asyncio.ensure_future(self._close_later(link))
            self.retiring.add(task)
            task.add_done_callback(self.retiring.discard)

    async def _close_later(self, link: aioredis.Redis) -> None:
        await asyncio.sleep(LINK_RETIRE_S)
        self.retired.discard(link)
        with contextlib.suppress(RedisError, OSError):
            await link.aclose()

    async def aclose(self) -> None:
        """Close the link and the retired ones now (the store is closing)."""
        if self.relearning is not None:
            self.relearning.cancel()
        for task in self.retiring:
            task.cancel()
        links = [*self.retired, *([self.link] if self.link is not None else [])]
        self.link = None
        self.retired.clear()
        for link in links:
            with contextlib.suppress(RedisError, OSError):
                await link.aclose()


async def _ask_about(cluster: RedisCluster, key: str) -> None:
    try:
        await cluster.exists(key)
    except Exception as exc:
        if not _redis_trouble(exc):
            raise


NODE_LINK_CONNECTIONS = 16
_REDIS_PACKAGE = str(Path(redis.__file__).parent)


def _raised_in_redis(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc`'s traceback is redis-py's own code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(_REDIS_PACKAGE)


def _redis_trouble(exc: BaseException) -> bool:
    """A Redis or network error, or redis-py tripping over a connection that its client
    disconnected during the call: a cluster client that resets its layout in a failover
    disconnects every node's connections, those in use included, and a call on one fails
    with an AttributeError (its writer gone) rather than a ConnectionError. Either way the
    call did not get through: "busy, retry" like any Redis error."""
    if isinstance(exc, RedisError | RedisClusterException | OSError):
        return True
    return isinstance(exc, AttributeError | TypeError | KeyError | IndexError) and \
        _raised_in_redis(exc)


class _Script:
    """One script of lua/, run by EVALSHA, its reply read by name."""

    __slots__ = ("_client", "_replicas", "_script", "name")

    def __init__(self, client: RedisClient, name: str,
                 replicas: _Replicas | None = None) -> None:
        self.name = name
        self._client = client
        self._replicas = replicas or _Replicas()
        # A cluster client registers scripts the same way (EVALSHA routed by the first key).
        self._script = register(client, "queue_gate", name)

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int | float], *,
                       replicated: bool = False) -> Reply:
        """Run the script. `replicated`: the write must be on a replica before this returns
        (see `_run_replicated`); raises `NotReplicated` when it is not."""
        try:
            if replicated and isinstance(self._client, aioredis.Redis):
                raw = await self._run_replicated(self._client, keys, args)
            elif replicated and isinstance(self._client, RedisCluster):
                raw = await self._run_on_node(self._client, keys, args)
            else:
                raw = await self._script(keys=keys, args=args)
        except Exception as exc:
            if not _redis_trouble(exc):
                raise
            raise _unavailable(exc) from exc
        return Reply(raw, self.name)

    async def _run_on_node(self, cluster: RedisCluster, keys: Sequence[str],
                           args: Sequence[str | int | float]) -> Any:
        """`_run_replicated` on the master of the room's slot. A node that is gone, or no
        longer master of the slot (MOVED, READONLY), is a failover under way: the cluster
        client is asked about the key, which makes it learn the new layout, and the call
        is "busy, retry" (`GateUnavailable`) like any Redis error."""
        link = await self._replicas.link_to(cluster, keys[0])
        try:
            return await self._run_replicated(link, keys, args)
        except Exception as exc:
            if _redis_trouble(exc) and self._replicas.link is link:
                self._replicas.close_link()
                self._replicas.relearn(cluster, keys[0])
            raise

    async def _run_replicated(self, client: aioredis.Redis, keys: Sequence[str],
                              args: Sequence[str | int | float]) -> Any:
        """The script, then `WAIT 1` and `ROLE`, in one round trip on one connection (WAIT
        counts the acknowledgements of this connection's writes). A master with a replica
        that has not confirmed within `REPLICA_WAIT_MS` is a failover away from losing the
        write: `NotReplicated`. A master with none connected cannot do better: the write
        stands (the start-up check reports such a Redis)."""
        if self._replicas.connected is None:  # once per store: WAIT only if there are some
            role = await client.execute_command("ROLE")  # type: ignore[no-untyped-call]
            self._replicas.connected = len(_replicas_of(role))
        waiting = self._replicas.connected > 0
        for attempt in range(2):
            # EVALSHA straight into the pipeline: registering the script with it would cost
            # a SCRIPT EXISTS round trip on every call.
            async with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
                if waiting:
                    pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
                pipe.execute_command("ROLE")
                try:
                    raw, *acknowledged, role = await pipe.execute()
                    break
                except NoScriptError:
                    if attempt:
                        raise
            # A Redis that has not seen the script (restarted, or a new master).
            await client.script_load(self._script.script)
        replicas = _replicas_of(role)
        self._replicas.connected = len(replicas)
        # Race: a replica that connected after our last look (no WAIT sent) gets a full copy
        # of the data, this write included, when it syncs.
        if waiting and replicas and not (acknowledged and int(acknowledged[0]) >= 1):
            raise NotReplicated(f"{self.name}: no replica confirmed within "
                                f"{REPLICA_WAIT_MS} ms")
        return raw


SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 3.0
# How long a replaced cluster link stays open for the calls still on it: longer than one
# takes (a connect, then a pipeline's replies, each bounded by its timeout).
LINK_RETIRE_S = CONNECT_TIMEOUT_S + 2 * SOCKET_TIMEOUT_S


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (connections go to whichever server Sentinel names master) with the
    blocking pool's bound: callers wait for a free connection rather than open more."""


@dataclass(slots=True)
class RedisConnection:
    """A client for the room's Redis and what must be closed with it (a Sentinel set-up's
    own connections to the Sentinels)."""

    client: RedisClient
    kind: Literal["single", "sentinel", "cluster"]
    _sentinel: Sentinel | None = None

    async def aclose(self) -> None:
        await self.client.aclose()  # the client owns its pool and closes it
        if self._sentinel is not None:
            for watcher in self._sentinel.sentinels:
                await watcher.aclose()


def _unavailable(exc: Exception) -> GateUnavailable:
    """`GateUnavailable` for an error `_redis_trouble` accepts (redis-py's own slips named
    as such in the log)."""
    if isinstance(exc, RedisError | RedisClusterException | OSError):
        return GateUnavailable(str(exc))
    return GateUnavailable(f"redis-py: {type(exc).__name__}: {exc}")


def _replicas_of(role: Any) -> list[Any]:
    """The replicas ROLE lists for a master (none for a replica or an odd answer)."""
    return list(role[2]) if isinstance(role, list | tuple) and len(role) > 2 and \
        isinstance(role[2], list | tuple) else []


def connect(settings: Settings, *, max_connections: int, wait_s: float) -> RedisConnection:
    """A client for the room's Redis, reached as the settings say: one instance, a master
    through Sentinel, or a Redis Cluster.

    Pools are bounded: under a rush, callers wait up to `wait_s` for a connection instead of
    opening thousands, past that they get `GateUnavailable`. A cluster client bounds each
    node's pool to `max_connections` and answers at once when a node's are all in use
    (redis-py's cluster pool does not wait), which is `GateUnavailable` too."""
    if settings.redis_cluster:
        cluster = RedisCluster.from_url(
            settings.redis_url, max_connections=max_connections,
            socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
            decode_responses=True)
        return RedisConnection(cluster, "cluster")
    if settings.redis_sentinels:
        master = aioredis.Redis.from_url(settings.redis_url).connection_pool.connection_kwargs
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinel_addresses),
            sentinel_kwargs={"socket_timeout": SOCKET_TIMEOUT_S,
                             "socket_connect_timeout": CONNECT_TIMEOUT_S},
            socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
            decode_responses=True,
            **{name: master[name] for name in ("db", "username", "password")
               if master.get(name) is not None})
        client = sentinel.master_for(
            settings.redis_master, redis_class=aioredis.Redis,
            connection_pool_class=_BlockingSentinelPool,
            max_connections=max_connections, timeout=wait_s)
        return RedisConnection(client, "sentinel", sentinel)
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=max_connections,
        timeout=wait_s,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        decode_responses=True,
    )
    return RedisConnection(aioredis.Redis.from_pool(pool), "single")


class RoomStore:
    """The Redis side of one room: tick, join, passes and configuration."""

    def __init__(
        self,
        client: RedisClient,
        settings: Settings,
        *,
        room: str | None = None,
        clock: Clock | None = None,
        seed: Callable[[], TickResult | None] | None = None,
        memory: LineMemory | None = None,
    ) -> None:
        self.client = client
        # Shared by a process's stores: numbers its visitors were given, and its snapshots.
        self._memory = memory or LineMemory()
        # The room as this process last saw it, to re-create it from if Redis loses it.
        self._last: TickResult | None = None
        self._seed = seed or (lambda: self._last)
        self.room = room or settings.room
        self.keys = RoomKeys(self.room)
        self._settings = settings
        # None means Redis TIME: the one clock every process on every machine agrees on.
        self._clock = clock
        # The scripts whose writes must reach a replica share what they learn of it.
        replicas = self._replicas = _Replicas()
        self._tick = _Script(client, "tick-11.lua", replicas)
        self._join = _Script(client, "join-14.lua", replicas)
        self._joins: list[_PendingJoin] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._issue_pass = _Script(client, "issue_pass-11.lua", replicas)
        self._draw_place = _Script(client, "draw_place-11.lua")
        self._check_pass = _Script(client, "check_pass-3.lua")
        # An ended session and an operator's change must outlive a failover too: a lost
        # end would open a finished session again, a lost change bring back the old rate.
        self._end_pass = _Script(client, "end_pass-2.lua", replicas)
        self._configure = _Script(client, "configure-2.lua", replicas)
        self._set_schedule = _Script(client, "set_schedule-3.lua", replicas)
        self._apply_schedule = _Script(client, "apply_schedule-3.lua", replicas)
        # Not replicated: a decision lost in a failover is made again within a second.
        self._health = _Script(client, "health-3.lua")
        self._presence = _Script(client, "presence-4.lua")
        # Agents' passes: issuing and revoking must outlive a failover (a lost revocation
        # would open a withdrawn pass again); a check only notes when it was last used.
        self._issue_agent_pass = _Script(client, "issue_agent_pass-4.lua", replicas)
        self._revoke_agent_pass = _Script(client, "revoke_agent_pass-4.lua", replicas)
        self._check_agent_pass = _Script(client, "check_agent_pass-3.lua")
        # Names this process's verdict in the room's health hash.
        self.process_id = secrets.token_hex(6)

    async def aclose(self) -> None:
        """Close what the store opened itself (on a cluster, its link to the room's node);
        the client is the caller's."""
        await self._replicas.aclose()

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except Exception as exc:
            if not _redis_trouble(exc):
                raise
            raise _unavailable(exc) from exc

    async def tick(self, seen: Sequence[int] = ()) -> TickResult:
        """Admit at the rate, mark `seen` numbers present, read the room (creating it)."""
        s = self._settings
        args: list[str | int | float] = [
            self._now_arg(), MAX_CREDITED_ELAPSED_S, s.ticket_max_age_s, s.abandon_grace_s,
            s.draw_grace_s, WALK_LIMIT, *self._creation_args(), *seen,
        ]
        result = _tick_result(await self._tick(self.keys.room_script_keys, args,
                                               replicated=True))
        self._last = result
        self._memory.saw(result.epoch, result.seq)
        return result

    def _creation_args(self) -> list[str | int | float]:
        """How tick-11.lua creates the room if it does not exist, and what its line may not
        be behind: from the settings for a new room; from this process's last snapshot for
        a room Redis lost or that came back behind (same epoch and operators'
        configuration; seq and frontier at least the snapshot's, seq with a margin)."""
        seed = self._seed()
        if seed is None:
            s = self._settings
            return [s.initial_rate_per_minute, s.initial_mode, s.initial_message,
                    s.initial_session_minutes, secrets.token_hex(4), 0, 0, 0, "", 0, 0]
        config = seed.config
        handed_out = self._memory.seq if self._memory.epoch == seed.epoch else 0
        # Every other setting an operator may have changed comes back as it was too.
        more = [part for name, value in _more_settings(config) for part in (name, value)]
        return [config.rate_per_minute, config.mode, config.message, config.session_minutes,
                seed.epoch, max(seed.seq, handed_out), seed.frontier,
                config.max_active_sessions,
                "" if config.opens_at is None else math.ceil(config.opens_at), RESEED_MARGIN,
                len(more) // 2, *more]

    async def register_room(self) -> None:
        """List the room for the admin API (a plain set, outside the room's hash slot)."""
        await self._call(lambda: self.client.sadd(ROOMS_KEY, self.room))

    async def unregister_room(self) -> None:
        """Take the room off the registry: every gate process stops serving it."""
        await self._call(lambda: self.client.srem(ROOMS_KEY, self.room))

    async def join(self, ticket_id: str, *, address: str | None = None,
                   challenge: tuple[str, int] | None = None) -> JoinResult:
        """Take a place. Joins arriving together share one round trip (see `_flush_joins`);
        the first join of a room that does not exist yet costs a tick more.

        `address` is the network address to count against the join limit; None for
        trusted networks. `challenge`: the (id, expiry) of a solved proof-of-work
        challenge, refused as "challenge_used" if any join had it before."""
        pending = _PendingJoin(ticket_id, address,
                               asyncio.get_running_loop().create_future(), challenge)
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
        keys = self.keys.join_script_keys(int(window))
        args: list[str | int | float] = [self._now_arg(), math.ceil(s.join_window_s - into),
                                         s.abandon_grace_s]
        for join in batch:
            draw_key = secrets.randbits(52) / (1 << 52)
            trusted = join.address is None
            challenge_id, challenge_expires_at = join.challenge or ("", 0)
            args += [join.ticket_id, repr(draw_key),
                     0 if trusted else s.join_limit, join.address or "-",
                     0 if trusted else s.draw_limit, challenge_id, challenge_expires_at]
        try:
            reply = await self._join(keys, args, replicated=True)
            if reply.text("outcome") == "missing":
                await self.tick()
                reply = await self._join(keys, args, replicated=True)
            if reply.text("outcome") == "missing":
                # The room's keys vanished between the tick and the retry (a flushed Redis).
                raise GateUnavailable(f"room {self.room} missing after creating it")
            results = _join_results(reply, len(batch))
        except (GateUnavailable, ScriptError) as exc:
            for join in batch:
                if not join.result.done():
                    join.result.set_exception(type(exc)(str(exc)))
            return
        except BaseException as exc:
            # Whatever else ended the call, every join of the batch gets an answer: one
            # left pending holds its visitor's request open until the client gives up.
            stopping = isinstance(exc, asyncio.CancelledError)
            if not stopping:
                log.error("join batch of room %s failed", self.room, exc_info=exc)
            for join in batch:
                if not join.result.done():
                    join.result.set_exception(
                        GateUnavailable("the gate is stopping") if stopping else exc)
            raise
        for join, result in zip(batch, results, strict=True):
            if result.number:
                self._memory.saw(result.epoch, result.number)
            if not join.result.done():  # its request may have been cancelled meanwhile
                join.result.set_result(result)

    async def issue_pass(self, ticket_id: str, number: int, epoch: str) -> PassResult:
        args: list[str | int | float] = [ticket_id, number, epoch, self._now_arg()]
        reply = await self._issue_pass(self.keys.room_script_keys, args, replicated=True)
        if reply.text("outcome") == "missing":
            await self.tick()  # Redis lost the room: re-create it from the last snapshot
            args[3] = self._now_arg()
            reply = await self._issue_pass(self.keys.room_script_keys, args, replicated=True)
        outcome, value = _outcome_value(reply, _PASS_VALUE)
        if outcome == "missing":
            raise GateUnavailable(f"room {self.room} missing after creating it")
        return PassResult(cast(PassOutcome, outcome), value)

    async def draw_place(self, ticket_id: str, opens_at: int) -> DrawPlace:
        """The number a pre-queue ticket drew at opening (or that the draw is still ahead)."""
        args: list[str | int | float] = [ticket_id, opens_at, self._now_arg()]
        reply = await self._draw_place(self.keys.room_script_keys, args)
        outcome = reply.text("outcome")
        if outcome == "drawn":
            return DrawPlace("drawn", reply.integer("number"), reply.integer("draw_base"))
        if outcome == "prequeue":
            return DrawPlace("prequeue", 0, 0)
        if outcome == "stale":
            return DrawPlace("stale", 0, 0)
        raise ScriptError(f"unknown outcome in {reply!r}")

    async def check_pass(self, ticket_id: str, fingerprint: str,
                         expires_at: int) -> tuple[str, int]:
        """("ok", expiry), ("ended", 0) or ("shared", browsers): see lua/check_pass-3.lua.
        `expires_at` is the pass's signed expiry: a pass Redis lost with the room is
        honoured (and recorded again) if it was issued before the loss."""
        seed = self._seed()
        session_minutes = seed.config.session_minutes if seed is not None else \
            self._settings.initial_session_minutes
        args: list[str | int | float] = [
            ticket_id, fingerprint, self._settings.pass_max_browsers, self._now_arg(),
            expires_at, session_minutes * 60]
        reply = await self._check_pass(self.keys.check_pass_script_keys(ticket_id), args)
        return _outcome_value(reply, _CHECK_VALUE)

    async def end_pass(self, ticket_id: str) -> bool:
        reply = await self._end_pass(self.keys.end_pass_script_keys,
                                     [ticket_id, self._now_arg()], replicated=True)
        return reply.flag("ended")

    async def issue_agent_pass(self, pass_id: str, agent: str, *, operator: str,
                               seconds: int, limit: int) -> AgentPassIssued:
        """Record an agent pass valid for `seconds`, if fewer than `limit` are active.
        Raises `RoomMissing` for a room no gate has created."""
        reply = await self._issue_agent_pass(
            self.keys.issue_agent_pass_script_keys(pass_id),
            [pass_id, agent, operator, seconds, limit, self._now_arg(), self.room, AUDIT_KEEP],
            replicated=True)
        outcome = reply.text("outcome")
        if outcome == "missing":
            raise RoomMissing(self.room)
        if outcome == "full":
            return AgentPassIssued("full", 0, reply.integer("active"))
        if outcome == "issued":
            return AgentPassIssued("issued", reply.integer("expires_at"),
                                   reply.integer("active"))
        raise ScriptError(f"unknown outcome in {reply!r}")

    async def check_agent_pass(self, pass_id: str, fingerprint: str) -> tuple[str, int]:
        """("ok", expiry), ("ended", 0) or ("shared", browsers): lua/check_agent_pass-3.lua."""
        reply = await self._check_agent_pass(
            self.keys.check_agent_pass_script_keys(pass_id),
            [pass_id, fingerprint, self._settings.agent_pass_max_browsers, self._now_arg()])
        return _outcome_value(reply, _CHECK_VALUE)

    async def revoke_agent_pass(self, pass_id: str, *, operator: str) -> str | None:
        """End an active agent pass; its agent's name, or None when there was none."""
        reply = await self._revoke_agent_pass(
            self.keys.revoke_agent_pass_script_keys(pass_id),
            [pass_id, operator, self._now_arg(), self.room, AUDIT_KEEP], replicated=True)
        return reply.text("agent") if reply.text("outcome") == "revoked" else None

    async def count_agent_passes(self) -> int:
        """How many agent passes are active now."""
        now = self._clock() if self._clock is not None else await self.redis_time()
        return int(await self._call(lambda: self.client.zcount(self.keys.agents, f"({now}",
                                                               "+inf")))

    async def agent_passes(self) -> list[AgentPassRecord]:
        """The room's active agent passes, those expiring first first."""
        now = self._clock() if self._clock is not None else await self.redis_time()
        active = cast(list[tuple[str, float]], await self._call(
            lambda: self.client.zrangebyscore(self.keys.agents, f"({now}", "+inf",
                                              withscores=True)))
        if not active:
            return []

        async def records() -> list[Any]:
            # Every key is of the room's slot: a cluster client sends it to the room's node.
            async with self.client.pipeline(transaction=False) as pipe:
                for pass_id, _ in active:
                    pipe.hgetall(self.keys.agent(str(pass_id)))
                return await pipe.execute()

        found = []
        for (pass_id, expires), record in zip(active, await self._call(records), strict=True):
            last_used = record.get("last_used")
            found.append(AgentPassRecord(
                str(pass_id), str(record.get("agent", "")), str(record.get("issued_by", "")),
                float(record.get("issued_at") or 0), int(expires),
                float(last_used) if last_used else None))
        return found

    async def report_health(self, verdict: str, last_answer: float,
                            last_no_answer: float) -> HealthDecision:
        """Send this process's verdict on the backend; the room decides its effective rate
        (lua/health-3.lua, with the constants of `queue_gate.controller`)."""
        args: list[str | int | float] = [
            self._now_arg(), self.process_id, verdict, repr(last_answer),
            repr(last_no_answer), controller.DECIDE_EVERY_S, controller.DECREASE_FACTOR,
            controller.DECREASE_HOLD_S, controller.RAMP_S, controller.VERDICT_TTL_S,
            controller.REGAIN_SHARE]
        reply = await self._health(self.keys.health_script_keys, args)
        effective = reply.text("effective_rate")
        return HealthDecision(reply.text("rate_mode"), float(effective or 0),
                              reply.text("backend"), reply.flag("decided"))

    async def read_config(self) -> RoomConfig:
        raw = await self._call(lambda: self.client.hmget(
            self.keys.config,
            ["rate_per_minute", "mode", "message", "session_minutes", "opens_at", "max_active",
             "challenge_bits", "rate_mode", "rate_min", "rate_max", "challenge_bits_max",
             "challenge_join_rate", "routes", "deleted_at"]))
        if raw[0] is None or raw[13] is not None:
            raise RoomMissing(self.room)  # never created, or deleted for good
        (rate, mode, message, session, opens_at, max_active, bits, rate_mode, rate_min,
         rate_max, bits_max, join_rate, routes, _) = (str(v or "") for v in raw)
        return RoomConfig(int(rate), mode, message, int(session or 15),
                          float(opens_at) if opens_at else None, int(max_active or 0),
                          challenge_bits=int(bits or 0), rate_mode=rate_mode or "fixed",
                          rate_min=int(rate_min or 0), rate_max=int(rate_max or 0),
                          challenge_bits_max=int(bits_max or 0),
                          challenge_join_rate=int(join_rate or 0),
                          routes=routes)

    async def deleted_at(self) -> float | None:
        """When an operator deleted the room for good (its config hash keeps the mark, so
        no tick ever creates it again), None if they did not."""
        raw = await self._call(lambda: self.client.hget(self.keys.config, "deleted_at"))
        return float(raw) if raw else None

    async def redis_time(self) -> float:
        """Redis TIME in unix seconds (on a cluster, any node's: their clocks agree closely
        enough for counting unexpired passes)."""
        secs, micros = await self._call(lambda: self.client.time())
        return int(secs) + int(micros) / 1e6

    async def read_room(self) -> tuple[RoomConfig, dict[str, int | None]]:
        """Configuration and counters, read without ticking (for the admin API)."""
        config = await self.read_config()
        now = self._clock() if self._clock is not None else await self.redis_time()

        async def counters() -> list[Any]:
            # Every command names a key of the room's slot: a cluster client sends the
            # pipeline to the room's node (TIME, which names none, is asked for apart).
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(self.keys.state, ["seq", "frontier", "admitted", "skipped",
                                             "passes_issued", "passes_ended"])
                pipe.zcard(self.keys.prequeue)
                pipe.llen(self.keys.returners)
                pipe.zcount(self.keys.passes, f"({now}", "+inf")
                return await pipe.execute()

        state, prequeue, returners, active = await self._call(counters)
        seq, frontier, admitted, skipped, issued, ended = (int(v or 0) for v in state)
        present = await self._present(frontier, seq)
        return config, {
            "tickets_issued": seq,
            "frontier": frontier,
            "admitted": admitted,
            "left_while_waiting": skipped,
            "waiting": seq - frontier + int(returners),
            "present": present,
            "prequeue": int(prequeue),
            "passes_issued": issued,
            "passes_ended": ended,
            "passes_active": int(active),
        }

    async def _present(self, frontier: int, seq: int) -> int | None:
        """How many of the numbers ahead of the frontier were seen polling lately (those the
        tick will not pass over as gone); None without a grace period, when presence is
        not recorded."""
        if self._settings.abandon_grace_s <= 0:
            return None
        reply = await self._presence(self.keys.presence_script_keys, [frontier + 1, seq])
        return reply.integer("present")

    async def update_config(self, changes: dict[str, str | int | float | None], *,
                            operator: str = "admin") -> RoomConfig:
        """Write validated changes (None deletes a field); every gate process picks them up
        at its next tick. Each field that changed is recorded in the room's audit."""
        config, _ = await self.change_config(changes, operator=operator)
        return config

    async def change_config(self, changes: dict[str, str | int | float | None], *,
                            operator: str) -> tuple[RoomConfig, tuple[str, ...]]:
        """`update_config`, also returning the names of the fields whose value changed (in
        the config hash's names: `max_active`), as recorded in the audit."""
        assert changes.get("mode", "queue") in MODES
        opens_at = changes.get("opens_at")
        if isinstance(opens_at, float):
            # Whole seconds: tickets carry the opening as an integer (and never open early).
            changes = {**changes, "opens_at": math.ceil(opens_at)}
        setting = [part for name, value in changes.items() if value is not None
                   for part in (name, value)]
        clearing = [name for name, value in changes.items() if value is None]
        reply = await self._configure(
            self.keys.configure_script_keys,
            [operator, self._now_arg(), self.room, AUDIT_KEEP, len(setting) // 2, *setting,
             *clearing],
            replicated=True)
        if reply.text("outcome") == "missing":
            raise RoomMissing(self.room)  # a room must exist before it is changed
        try:
            changed = tuple(str(name) for name in json.loads(reply.text("changed")))
        except (ValueError, TypeError) as exc:
            raise ScriptError(f"configure-2.lua: unreadable changes in {reply!r}") from exc
        return await self.read_config(), changed

    async def delete_room(self, *, operator: str) -> tuple[str, ...]:
        """Close the room for good, audited like any change: mode closed, no routes, and
        the mark `deleted_at` (which `read_config` treats as missing). Its keys stay, so no
        tick re-creates it, and a ticket of it finds it closed. Raises `RoomMissing`."""
        now = self._clock() if self._clock is not None else time.time()
        reply = await self._configure(
            self.keys.configure_script_keys,
            [operator, self._now_arg(), self.room, AUDIT_KEEP, 2, "mode", "closed",
             "deleted_at", repr(now), "routes"],
            replicated=True)
        if reply.text("outcome") == "missing":
            raise RoomMissing(self.room)
        await self.unregister_room()
        return tuple(str(name) for name in json.loads(reply.text("changed")))

    async def set_schedule(self, entries: Sequence[ScheduledChange], *, operator: str,
                           read_at: int | None = None
                           ) -> tuple[tuple[ScheduledChange, ...], bool]:
        """Replace the room's pending schedule with validated `entries` (none clears it),
        recorded in the audit as one change of "schedule". An entry without an id gets a
        new one and `operator` as who scheduled it (entries read back keep theirs).
        `read_at`: the version the caller read the list at (`read_schedule`); if another
        change came first, raises `ScheduleConflict` and changes nothing. Returns the
        entries as stored (values as text, as the config hash holds them) in time order,
        and whether anything changed (clearing an empty schedule is not recorded)."""
        stored = tuple(sorted(
            (ScheduledChange(entry.at, {name: _stored(name, value)
                                        for name, value in entry.changes.items()},
                             entry.id or secrets.token_hex(6), entry.by or operator)
             for entry in entries), key=lambda entry: entry.at))
        args: list[str | int | float] = [operator, self._now_arg(), self.room, AUDIT_KEEP,
                                         "" if read_at is None else read_at]
        for entry in stored:
            args += [repr(entry.at), entry.member()]
        reply = await self._set_schedule(self.keys.schedule_script_keys, args,
                                         replicated=True)
        if reply.text("outcome") == "missing":
            raise RoomMissing(self.room)
        if reply.text("outcome") == "conflict":
            raise ScheduleConflict(self.room)
        return stored, reply.flag("changed")

    async def read_schedule(self) -> tuple[ScheduledChange, ...]:
        """The room's pending entries in time order."""
        raw = await self._call(lambda: self.client.zrange(self.keys.schedule, 0, -1))
        entries = (ScheduledChange.from_member(str(member)) for member in raw)
        return tuple(entry for entry in entries if entry is not None)

    async def read_schedule_at(self) -> tuple[tuple[ScheduledChange, ...], int]:
        """The pending entries and the version of the list they are (for a change of
        the list that must not undo another's: `set_schedule(read_at=...)`)."""

        async def read() -> list[Any]:
            # Both keys are the room's (one slot): a cluster sends them to its node. Race:
            # a change between the two is read with the version before it, so the caller's
            # `set_schedule` conflicts rather than undoes it.
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hget(self.keys.config, "schedule_version")
                pipe.zrange(self.keys.schedule, 0, -1)
                return await pipe.execute()

        version, raw = await self._call(read)
        entries = (ScheduledChange.from_member(str(member)) for member in raw)
        return tuple(entry for entry in entries if entry is not None), int(version or 0)

    async def apply_schedule(self) -> ScheduleApplied:
        """Apply every due entry of the schedule (apply_schedule-3.lua): each is applied by
        exactly one process, whichever calls first; the others get none."""
        reply = await self._apply_schedule(
            self.keys.schedule_script_keys, [self._now_arg(), self.room, AUDIT_KEEP],
            replicated=True)
        if reply.text("outcome") == "missing":
            raise RoomMissing(self.room)
        try:
            done = json.loads(reply.text("entries"))
            # cjson writes an empty Lua table as {}: an entry that changed nothing.
            applied = tuple((str(entry["id"]), tuple(str(name) for name in
                                                     (entry["changed"] or ())))
                            for entry in (done or ()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ScriptError(f"apply_schedule-3.lua: unreadable entries in {reply!r}") \
                from exc
        if len(applied) != reply.integer("applied"):
            raise ScriptError(f"apply_schedule-3.lua: count does not match in {reply!r}")
        return ScheduleApplied(applied, reply.optional_number("schedule_next"))

    async def read_audit(self, limit: int) -> list[dict[str, Any]]:
        """The room's last `limit` audit entries, newest first, as configure-2.lua wrote
        them (an entry that does not read as JSON is left out)."""
        raw = await self._call(lambda: self.client.lrange(self.keys.audit, 0, limit - 1))
        entries = []
        for item in raw:
            try:
                entry = json.loads(item)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries


async def known_rooms(client: RedisClient) -> list[str]:
    try:
        rooms = await client.smembers(ROOMS_KEY)
    except Exception as exc:
        if not _redis_trouble(exc):
            raise
        raise _unavailable(exc) from exc
    return sorted(str(room) for room in rooms)
