"""Redis key names, the Lua scripts and the one place where Redis errors become our own.

Every key of a deployment starts with `bk:{<deployment>}:`; the braces make the deployment
a Redis Cluster hash tag, so all keys of one deployment share a slot. Keys are built here
(`Keys`) and nowhere else: each script receives every key it touches in KEYS (Redis Cluster
routes a script by them), loaded by `vaccine_queue.lua`, and answers with named fields read
by name (`Reply`).

Where a script works on keys that only the data names (the holds the expiry index lists,
the entries at the head of a waiting list, a visitor's previous hold, a person's waiting
entry), its caller reads them first, or learns them from the script's first answer, and
declares them; the script checks under its atomicity that they still are what the caller
saw. If not, it writes nothing and says so, and the caller reads again (at most
`MAX_ATTEMPTS` times, then `StoreConflict`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from vaccine_queue.lua import Reply, register

Value = str | int | float
COUNT_NAMES = ("capacity", "free", "held", "booked", "bookings", "waiting")
EXPIRY_NAMES = ("holds_expired", "codes_expired")  # fields of `counts` that only grow
CENTRE_STATES = ("capacity", "free", "held", "booked")
# How often a two-phase step reads again when its keys changed before its script ran.
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Levels:
    """What the gauges show, read from Redis in one round trip (the same in every process)."""

    counts: dict[str, int]  # COUNT_NAMES and EXPIRY_NAMES
    centres: dict[str, dict[str, int]]  # centre -> capacity/free/held/booked units
    outbox_pending: int
    outbox_oldest_created: float | None  # when the oldest pending message was queued


def parse_centre_counts(raw: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """`ccounts` fields `<centre>:<state>` as {centre: {state: units}}, every state present."""
    result: dict[str, dict[str, int]] = {}
    for name, units in raw.items():
        centre, _, state = name.rpartition(":")
        if state in CENTRE_STATES:
            result.setdefault(centre, dict.fromkeys(CENTRE_STATES, 0))[state] = int(units)
    return result


class StoreUnavailable(Exception):
    """Redis could not be reached or refused a command; views show a friendly 503."""


class StoreConflict(StoreUnavailable):
    """A two-phase step found what it read changed every time it tried (a burst of writers
    on the same hold, verification or waiting list): a friendly 503, try again."""


def text(value: object) -> str:
    """Redis replies as str (decode_responses) or bytes; views want str."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


class Keys:
    """Every Redis key the backend uses, built from one prefix."""

    def __init__(self, deployment: str) -> None:
        self.prefix = f"bk:{{{deployment}}}:"
        p = self.prefix
        self.cap = p + "cap"  # HASH slot -> capacity units
        self.free = p + "free"  # HASH slot -> free units
        # HASH capacity/free/held/booked/bookings/waiting, holds_expired/codes_expired
        self.counts = p + "counts"
        self.centre_counts = p + "ccounts"  # HASH "<centre>:capacity|free|held|booked" -> units
        self.holds = p + "holds"  # ZSET hold id by expiry
        self.identities = p + "identities"  # HASH identity HMAC -> booking code
        self.outbox = p + "outbox"  # ZSET message id by due time
        self.outbox_created = p + "outbox:created"  # ZSET pending message id by queuing time
        self.codes = p + "codes"  # ZSET verification key of a delivered code by validity end
        self.wl_identities = p + "wl:identities"  # HASH identity HMAC -> waiting entry
        self.wl_seq = p + "wl:seq"  # counter: order of joining the waiting list
        self.invitations = p + "inv"  # HASH invitation HMAC -> wave
        self.waves = p + "waves"  # HASH wave -> JSON {min_age, count, created}
        self.catalogue = p + "catalogue"  # HASH version, json (centres and postcodes)
        self.demo_lock = p + "demo-lock"  # STRING: one process loads the demo data

    @property
    def inventory(self) -> list[str]:
        """The first KEYS of every script that includes `lua/_lib.lua`, in its order."""
        return [self.free, self.cap, self.counts, self.centre_counts, self.holds]

    @property
    def booking_shared(self) -> list[str]:
        """The first KEYS of the scripts that book (confirm, cancel, release_slots)."""
        return [*self.inventory, self.identities, self.wl_identities, self.outbox,
                self.outbox_created]

    def cfree(self, centre: str) -> str:
        return f"{self.prefix}cfree:{centre}"  # ZSET slots with free units by start

    def hold(self, hid: str) -> str:
        return f"{self.prefix}hold:{hid}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    def booking(self, code: str) -> str:
        return f"{self.prefix}booking:{code}"

    def verif(self, vid: str) -> str:
        return f"{self.prefix}verif:{vid}"

    def msg(self, mid: str) -> str:
        return f"{self.prefix}msg:{mid}"

    def wl_entry(self, eid: str) -> str:
        return f"{self.prefix}wl:e:{eid}"

    def wl_district(self, district: str) -> str:
        return f"{self.prefix}wl:d:{district}"

    def wl_centre(self, centre: str) -> str:
        return f"{self.prefix}wl:c:{centre}"

    def session(self, sid: str) -> str:
        return f"{self.prefix}sess:{sid}"

    def idempotency(self, digest: str) -> str:
        return f"{self.prefix}idem:{digest}"


@dataclass(frozen=True, slots=True)
class Script:
    """One script of `lua/`, registered once per client; `name` names it in errors."""

    name: str
    runner: AsyncScript


class Store:
    """The Redis client, the key builder and every Lua script, registered once per client."""

    def __init__(self, client: aioredis.Redis, deployment: str) -> None:
        self.redis = client
        self.keys = Keys(deployment)

        def load(name: str) -> Script:
            return Script(name, register(client, "booking_backend", name))

        self.hold_script = load("hold-10.lua")
        self.release_script = load("release-8.lua")
        self.hold_details_script = load("hold_details-2.lua")
        self.code_request_script = load("code_request-7.lua")
        self.code_check_script = load("code_check-3.lua")
        self.confirm_script = load("confirm-18.lua")
        self.cancel_script = load("cancel-n.lua")
        self.release_slots_script = load("release_slots-n.lua")
        self.sweep_script = load("sweep-n.lua")
        self.codes_expire_script = load("codes_expire-2.lua")
        self.outbox_claim_script = load("outbox_claim-1.lua")
        self.outbox_done_script = load("outbox_done-5.lua")
        self.outbox_fail_script = load("outbox_fail-4.lua")
        self.waitlist_join_script = load("waitlist_join-8.lua")
        self.offers_script = load("offers-n.lua")

    @classmethod
    def from_url(cls, url: str, deployment: str) -> Store:
        client = aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        return cls(client, deployment)

    async def close(self) -> None:
        await self.redis.aclose()

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Turn any Redis failure into `StoreUnavailable` (the store boundary)."""
        try:
            yield
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def run(self, script: Script, keys: Sequence[str], args: Iterable[Value]) -> Reply:
        """Run a script; its reply of named fields is read by name."""
        async with self.guard():
            raw = await script.runner(keys=list(keys), args=list(args))
        return Reply(raw, script.name)

    async def hgetall(self, key: str) -> dict[str, str]:
        async with self.guard():
            raw = await self.redis.hgetall(key)
        return {text(k): text(v) for k, v in raw.items()}

    async def hget(self, key: str, field: str) -> str | None:
        async with self.guard():
            raw = await self.redis.hget(key, field)
        return None if raw is None else text(raw)

    async def get(self, key: str) -> str | None:
        async with self.guard():
            raw = await self.redis.get(key)
        return None if raw is None else text(raw)

    async def hset(self, key: str, mapping: Mapping[str, Value], *, ttl: int = 0) -> None:
        async with self.guard():
            pipe = self.redis.pipeline(transaction=True)
            fields: dict[Any, Any] = dict(mapping)
            pipe.hset(key, mapping=fields)
            if ttl:
                pipe.expire(key, ttl)
            await pipe.execute()

    async def set(self, key: str, value: str, *, ttl: int = 0, only_new: bool = False) -> bool:
        async with self.guard():
            done = await self.redis.set(key, value, ex=ttl or None, nx=only_new)
        return bool(done)

    async def delete(self, key: str) -> None:
        async with self.guard():
            await self.redis.delete(key)

    async def expire(self, key: str, ttl: int) -> None:
        async with self.guard():
            await self.redis.expire(key, ttl)

    async def counts(self) -> dict[str, int]:
        raw = await self.hgetall(self.keys.counts)
        return {name: int(raw.get(name, "0")) for name in COUNT_NAMES}

    async def levels(self) -> Levels:
        async with self.guard():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.keys.counts)
            pipe.hgetall(self.keys.centre_counts)
            pipe.zcard(self.keys.outbox)
            pipe.zrange(self.keys.outbox_created, 0, 0, withscores=True)
            counts, centres, pending, oldest = await pipe.execute()
        counts = {text(k): text(v) for k, v in counts.items()}
        return Levels(
            {name: int(counts.get(name, "0")) for name in COUNT_NAMES + EXPIRY_NAMES},
            parse_centre_counts({text(k): text(v) for k, v in centres.items()}),
            int(pending), float(oldest[0][1]) if oldest else None,
        )

    async def ping(self) -> bool:
        async with self.guard():
            return bool(await self.redis.ping())
