"""The rooms one gate process serves, and the routes that choose among them.

A process serves its environment's room (`QUEUE_GATE_ROOM`, created from the
`QUEUE_GATE_*` room variables as before) and every room of the registry `qg:rooms`
(created at runtime through `PUT /admin/rooms/{room}`). Each room is a `Room`: its store,
its view (the ticker's snapshot), its signer, and the visitor's path through it (arrival,
line, passes). The Redis clients are the process's, shared by all rooms; so are the backend
session and its health.

One loop (`Rooms.run`) ticks every room a few times a second and reads the registry on each
tick (one SMEMBERS): a room created anywhere is served here from the next tick, a deleted
one dropped. Ticks of the rooms run side by side, so twenty rooms cost about one round trip
of time per tick, not twenty.

Routes: each room names the requests it covers, `{"host", "path", "action"}` with action
`queue` (its line), `bypass` (proxied without a pass and without asking Redis) or `block`
(403). They live in the room's config hash (field `routes`, canonical JSON) and come back
with each tick; the process-wide `RouteTable` is rebuilt when any room's change. The most
specific route wins: an exact host before "*", then the longest path prefix, prefixes
matching on segment boundaries ("/manage" covers "/manage" and "/manage/x", not
"/managex"). The environment's room with no routes of its own covers `* /` with `queue`,
and `QUEUE_GATE_BYPASS_PATHS` are `bypass` routes of it (stored routes win over these). A
request no route covers goes to `QUEUE_GATE_DEFAULT_ROOM` (unset: the environment's room),
or straight to the backend when that is "none".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

from aiohttp import web

from queue_gate.addresses import AddressPolicy
from queue_gate.admission import RoomView
from queue_gate.arrival import Arrival
from queue_gate.challenge import ChallengeIssuer
from queue_gate.line import Line
from queue_gate.metrics import GateMetrics
from queue_gate.passes import Passes
from queue_gate.settings import NO_DEFAULT_ROOM, Settings
from queue_gate.store import (
    ROOMS_KEY,
    Clock,
    GateUnavailable,
    LineMemory,
    RedisClient,
    RoomMissing,
    RoomStore,
    TickResult,
    known_rooms,
)
from queue_gate.tickets import TicketSigner
from vaccine_queue.background import background
from vaccine_queue.contract import Ticket

log = logging.getLogger(__name__)

ACTIONS = ("queue", "bypass", "block")
ANY_HOST = "*"
MAX_ROUTES = 100
MAX_ROUTE_PATH = 200
# A host name as sent in Host (lowercase; no port: a route covers every port), or "*".
HOST = re.compile(r"^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}"
                  r"[a-z0-9])?)*)$")
ROUTE_PATH = re.compile(r"^/[A-Za-z0-9/_.~-]*$")


def plain_path(path: str) -> bool:
    """A path as sent with no encoded characters and no dot or empty segments: what the
    backend sees is what the route table saw, so a bypass route may be taken for it."""
    return not ("%" in path or "/." in path or "//" in path)


class InvalidRoutes(ValueError):
    """Routes an operator sent that cannot be served; the message says why."""


@dataclass(frozen=True, slots=True)
class Route:
    host: str  # lowercase host name, or "*"
    path: str  # a prefix: "/" or without a trailing "/"
    action: str  # queue | bypass | block

    def as_json(self) -> dict[str, str]:
        return {"host": self.host, "path": self.path, "action": self.action}


def parse_routes(value: object) -> tuple[Route, ...]:
    """Routes from an operator's JSON, checked. Raises `InvalidRoutes` naming the entry."""
    if not isinstance(value, list):
        raise InvalidRoutes('routes must be a list of {"host", "path", "action"} objects.')
    if len(value) > MAX_ROUTES:
        raise InvalidRoutes(f"routes: at most {MAX_ROUTES} routes per room.")
    routes: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(value):
        where = f"routes[{i}]"
        if not isinstance(item, dict) or set(item) != {"host", "path", "action"}:
            raise InvalidRoutes(f'{where} must be an object with exactly "host", "path" '
                                'and "action".')
        host, path, action = item["host"], item["path"], item["action"]
        if not isinstance(host, str) or not HOST.match(host.lower()) or len(host) > 253:
            raise InvalidRoutes(f'{where}.host must be a host name such as '
                                f'booking.example.org (no port), or "*" for any host.')
        if (not isinstance(path, str) or not ROUTE_PATH.match(path)
                or len(path) > MAX_ROUTE_PATH or "//" in path or "/." in path
                or path == "/queue" or path.startswith("/queue/")):
            raise InvalidRoutes(f"{where}.path must be a path prefix such as /manage (from "
                                f"'/', letters, digits, '/', '-', '_', '.', '~'; at most "
                                f"{MAX_ROUTE_PATH} characters; nothing under /queue, "
                                "which is the gate's own).")
        if action not in ACTIONS:
            raise InvalidRoutes(f"{where}.action must be one of: {', '.join(ACTIONS)}.")
        route = Route(host.lower(), path.rstrip("/") or "/", action)
        if (route.host, route.path) in seen:
            raise InvalidRoutes(f"{where}: {route.host} {route.path} is named twice.")
        seen.add((route.host, route.path))
        routes.append(route)
    return tuple(routes)


def routes_json(routes: tuple[Route, ...]) -> str:
    """The stored form: canonical, so equal routes are equal text."""
    ordered = sorted(routes, key=lambda r: (r.host, r.path))
    return json.dumps([r.as_json() for r in ordered], separators=(",", ":"))


def stored_routes(raw: str, room: str) -> tuple[Route, ...]:
    """Routes as the config hash holds them ("" for none). A value that does not read (only
    written by hand) is logged and taken as none: the room keeps its line."""
    if not raw:
        return ()
    try:
        return parse_routes(json.loads(raw))
    except (ValueError, InvalidRoutes) as exc:
        log.error("room %s: stored routes unreadable (%s); serving it without routes",
                  room, exc)
        return ()


@dataclass(eq=False)
class Room:
    """One room as this process serves it: what `main.py` built once for its only room."""

    name: str
    settings: Settings  # the process's settings with `room` set to this room
    store: RoomStore  # visitors' requests (the large pool)
    view: RoomView  # the ticker's snapshot, on the control pool
    signer: TicketSigner
    arrival: Arrival
    line: Line
    passes: Passes
    routes: tuple[Route, ...] = ()
    routes_raw: str = ""

    async def aclose(self) -> None:
        await self.store.aclose()
        await self.view.store.aclose()


@dataclass(frozen=True, slots=True)
class Match:
    """Where a request goes: `room` None means straight to the backend (no route and
    QUEUE_GATE_DEFAULT_ROOM=none)."""

    room: Room | None
    action: str


class RouteTable:
    """Every served room's routes, by host then path: a lookup walks the request path's
    prefixes on segment boundaries, longest first (at most as deep as the deepest route)."""

    def __init__(self, rooms: list[Room], first: Room, bypass_paths: tuple[str, ...],
                 default: Room | None) -> None:
        self._hosts: dict[str, dict[str, Match]] = {}
        self.default = default
        # Implicit routes of the environment's room first, so stored ones replace them.
        # A bypass path with a trailing "/" ("/static/") covers only what is under it.
        implicit = [Route(ANY_HOST, p, "bypass") for p in bypass_paths]
        if not first.routes:
            implicit.append(Route(ANY_HOST, "/", "queue"))
        for route in implicit:
            self._hosts.setdefault(route.host, {})[route.path] = Match(first, route.action)
        owners: dict[tuple[str, str], str] = {}
        for room in sorted(rooms, key=lambda r: r.name):
            for route in room.routes:
                owner = owners.get((route.host, route.path))
                if owner is not None:
                    # Two PUTs racing past the admin API's check: the first name keeps it.
                    log.warning("route %s %s of room %s is room %s's too; %s serves it",
                                route.host, route.path, room.name, owner, owner)
                    continue
                owners[(route.host, route.path)] = room.name
                self._hosts.setdefault(route.host, {})[route.path] = Match(room, route.action)
        self._depth = max((path.count("/") for paths in self._hosts.values()
                           for path in paths), default=1)

    def resolve(self, host: str, path: str) -> Match:
        host = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
        for name in (host.lower(), ANY_HOST):
            paths = self._hosts.get(name)
            if paths is None:
                continue
            # No deeper than the deepest route: a long path costs no more than a short one.
            prefix = "/".join(path.split("/", self._depth + 1)[:self._depth + 1])
            prefix = prefix.rstrip("/") or "/"
            while True:
                if prefix != "/" and len(path) > len(prefix):
                    match = paths.get(prefix + "/")  # the path goes on under the prefix
                    if match is not None:
                        return match
                match = paths.get(prefix)
                if match is not None:
                    return match
                if prefix == "/":
                    break
                prefix = prefix[:prefix.rindex("/")] or "/"
        return Match(self.default, "queue" if self.default is not None else "bypass")


class Rooms:
    """The rooms this process serves, the route table over them, and their ticker."""

    def __init__(self, settings: Settings, *, visitors: RedisClient, control: RedisClient,
                 metrics: GateMetrics, policy: AddressPolicy, clock: Clock | None,
                 now: Clock) -> None:
        self._settings = settings
        self._visitors = visitors
        self.control = control
        self._metrics = metrics
        self._policy = policy
        # None: Redis TIME (production); tests inject a clock.
        self.clock = clock
        self._now = now
        # Tickets verified once, for every room's signer (a visitor polls often).
        self._verified: dict[str, Ticket] = {}
        self.first = self._build(settings.room)
        self._rooms: dict[str, Room] = {self.first.name: self.first}
        # Rooms this process stopped serving (deleted): their last message, for the
        # visitors still holding their tickets.
        self._ended: dict[str, str] = {}
        self.table = self._table()
        self._lock = asyncio.Lock()

    # --- the rooms ----------------------------------------------------------------------

    def _build(self, name: str) -> Room:
        settings = self._settings if name == self._settings.room else replace(
            self._settings, room=name)
        memory = LineMemory()
        view: RoomView | None = None

        def seed() -> TickResult | None:
            return view.snapshot if view is not None else None

        store = RoomStore(self._visitors, settings, clock=self.clock, seed=seed,
                          memory=memory)
        view = RoomView(RoomStore(self.control, settings, clock=self.clock, memory=memory),
                        settings, self._metrics)
        signer = TicketSigner(settings.secrets, name, ticket_max_age_s=settings.ticket_max_age_s,
                              clock=self._now, verified=self._verified)
        challenges = ChallengeIssuer(settings.secrets, name, wait_s=settings.challenge_wait_s,
                                     clock=self._now)
        arrival = Arrival(settings=settings, store=store, signer=signer, view=view,
                          policy=self._policy, metrics=self._metrics, challenges=challenges)
        passes = Passes(settings=settings, store=store, signer=signer, metrics=self._metrics,
                        clock=self._now)
        line = Line(view=view, store=store, signer=signer, passes=passes, clock=self._now)
        return Room(name, settings, store, view, signer, arrival, line, passes)

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)

    def ended_message(self, name: str) -> str:
        """The last message of a room this process stopped serving ("" if none known)."""
        return self._ended.get(name, "")

    async def ended(self, name: str) -> bool:
        """Whether room `name`, not served here, was deleted for good (a ticket of it gets
        the closed state); a room never created is not (its ticket is another
        deployment's). Asks Redis once per room and remembers a deletion."""
        if name in self._ended:
            return True
        async with self.store_for(name) as store:
            deleted = await store.deleted_at()
        if deleted is not None and name not in self._rooms:
            self._ended[name] = ""
        return deleted is not None

    def _table(self) -> RouteTable:
        wanted = self._settings.default_room
        if wanted == NO_DEFAULT_ROOM:
            default: Room | None = None
        else:
            default = self._rooms.get(wanted or self.first.name, self.first)
        return RouteTable(list(self._rooms.values()), self.first,
                          self._settings.bypass_paths, default)

    def resolve(self, request: web.Request, path: str | None = None) -> Match:
        """The room and action of a request (or of `path` on its host)."""
        return self.table.resolve(request.host, request.rel_url.path if path is None else path)

    def _take_routes(self, room: Room, raw: str) -> bool:
        if raw == room.routes_raw:
            return False
        room.routes_raw, room.routes = raw, stored_routes(raw, room.name)
        return True

    async def sync(self) -> None:
        """Serve the registry's rooms: new ones from now, deleted ones no longer."""
        names = set(await known_rooms(self.control))
        changed = False
        for name in sorted(names - set(self._rooms)):
            room = self._build(name)
            try:
                # A registry entry whose room is gone (or deleted) is not created here.
                config = await room.view.store.read_config()
            except RoomMissing:
                await room.aclose()
                continue
            self._take_routes(room, config.routes)
            self._rooms[name] = room
            self._ended.pop(name, None)
            changed = True
            log.info("room %s: serving it from now", name)
        for name in sorted(set(self._rooms) - names - {self.first.name}):
            room = self._rooms.pop(name)
            snapshot = room.view.snapshot
            self._ended[name] = snapshot.config.message if snapshot is not None else ""
            await room.aclose()
            self._metrics.forget_room(name)
            changed = True
            log.info("room %s: left the registry; no longer served", name)
        if changed:
            self.table = self._table()

    async def _tick(self, room: Room) -> bool:
        try:
            result = await room.view.refresh()
        except GateUnavailable as exc:
            self._metrics.redis_errors.labels(room.name, "tick").inc()
            log.warning("room %s: tick failed, keeping the last view: %s", room.name, exc)
            return False
        return self._take_routes(room, result.config.routes)

    async def refresh(self) -> None:
        """One tick of the whole process: the registry, then every room side by side.
        Raises `GateUnavailable` only when the registry cannot be read."""
        async with self._lock:
            await self.sync()
            moved = await asyncio.gather(*(self._tick(room) for room in self))
            if any(moved):
                self.table = self._table()

    async def refresh_room(self, name: str) -> None:
        """After an operator's change here: this process applies it at once."""
        async with self._lock:
            await self.sync()
            room = self._rooms.get(name)
            if room is not None and await self._tick(room):
                self.table = self._table()

    async def run(self) -> None:
        """Tick forever; when Redis is away keep the last views and retry with backoff."""
        interval = self._settings.tick_interval_s
        delay = interval
        while True:
            try:
                await self.refresh()
                delay = interval
            except GateUnavailable as exc:
                self._metrics.redis_errors.labels(self.first.name, "tick").inc()
                log.warning("rooms registry %s unreadable, keeping the last views: %s",
                            ROOMS_KEY, exc)
                delay = min(delay * 2, 5.0)
            await asyncio.sleep(delay)

    def running(self) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
        """Run the ticker as a background task; cancel it on exit."""
        return background(self.run(), "admission-ticker")

    @contextlib.asynccontextmanager
    async def store_for(self, name: str) -> AsyncIterator[RoomStore]:
        """A store of room `name` on the control pool: the served room's, else one for the
        call (the admin API reads and changes rooms this process does not serve yet)."""
        room = self._rooms.get(name)
        if room is not None:
            yield room.view.store
            return
        store = RoomStore(self.control, self._settings, room=name, clock=self.clock)
        try:
            yield store
        finally:
            await store.aclose()

    async def aclose(self) -> None:
        for room in self:
            await room.aclose()
