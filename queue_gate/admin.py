"""The operators' API, served on its own port: rooms, metrics and health.

`GET /admin/rooms`, `GET`, `PUT`, `PATCH` and `DELETE /admin/rooms/{room}` and
`GET /admin/audit` need
`Authorization: Bearer <token>`: QUEUE_GATE_ADMIN_TOKEN (the operator "admin") or one of
the named operators' QUEUE_GATE_ADMIN_TOKENS. Each operator's grant (QUEUE_GATE_OPERATOR_GRANTS,
queue_gate/operators.py) limits them to some rooms and to reading or changing: every handler
calls `require(request, room, role)` first. A change is written to Redis, where every gate
process's next tick (within `tick_interval_s`) picks it up: no restart. Each field it
changes is recorded in the room's audit (time, operator, room, field, old and new value) in
the same step, and counted in `queuegate_room_changes_total`. Call-centre agents' passes
(`/admin/rooms/{room}/agent-passes`) are served from `agents.py`.

The fields a room takes are one table, `ROOM_FIELDS`: how each is checked, what `PUT` sets
when it is left out, and its name in the config hash. A new field is one entry there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from queue_gate.keys import (
    clock_key,
    control_redis_key,
    gate_app_key,
    metrics_key,
    rooms_key,
    settings_key,
)
from queue_gate.operators import Role, grant_key, operator_key, require
from queue_gate.responses import NO_STORE
from queue_gate.rooms import InvalidRoutes, parse_routes, routes_json, stored_routes
from queue_gate.settings import MODES, ROOM_NAME, Settings
from queue_gate.store import (
    SCHEDULE_MAX,
    GateUnavailable,
    NotReplicated,
    RoomConfig,
    RoomMissing,
    RoomStore,
    ScheduledChange,
    known_rooms,
)

log = logging.getLogger(__name__)

MAX_RATE_PER_MINUTE = 1_000_000
MAX_SESSION_MINUTES = 24 * 60
MAX_MESSAGE_LENGTH = 1000
MAX_ACTIVE_SESSIONS = 10_000_000
AUDIT_DEFAULT_LIMIT = 100
AUDIT_MAX_LIMIT = 1000
# The config hash's names of fields the API calls otherwise.
API_FIELD_NAMES = {"max_active": "max_active_sessions"}

MAX_CHALLENGE_BITS = 28
# A schedule entry may be this late (clocks differ, a request takes a moment) and no later
# than this far ahead.
SCHEDULE_LATE_S = 60
SCHEDULE_AHEAD_S = 400 * 86400
# The join rate above which the difficulty rises, per minute (1,100 requests/s was
# Niedersachsen's peak: far below this bound).
MAX_JOIN_RATE_PER_MINUTE = 10_000_000


class InvalidChange(ValueError):
    pass


def json_error(status: int, code: str, message: str) -> web.Response:
    """An error for operators' tools: a stable code, and words in English like the API's
    documentation (citizens never see these)."""
    return web.json_response({"error": code, "message": message}, status=status,
                             headers=NO_STORE)


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer-token check for /admin/*, and JSON for every error."""
    if request.path.startswith("/admin/"):
        operators = request.app[gate_app_key][settings_key].operators
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        # The bytes as sent: a header that is not UTF-8 arrives with surrogate escapes.
        sent = given.encode("utf-8", "surrogateescape")
        # Every token compared, in constant time each: which one matched does not show.
        matched = [name for name, token in operators
                   if hmac.compare_digest(sent, token.encode())]
        if not given or not matched:
            return json_error(401, "unauthorized", "Send 'Authorization: Bearer <admin token>'.")
        request[operator_key] = matched[0]
        request[grant_key] = request.app[gate_app_key][settings_key].grant_of(matched[0])
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # a redirect, or an error that says itself (operators.require's)
        return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except NotReplicated as exc:
        log.warning("admin: change not confirmed by a replica: %s", exc)
        return json_error(503, "not_replicated",
                          "Redis took the change but no replica confirmed it in time: it "
                          "could be lost if the master failed now. Send it again.")
    except GateUnavailable as exc:
        log.warning("admin: Redis unavailable: %s", exc)
        return json_error(503, "redis_unavailable", "Redis is not answering; try again.")


@contextlib.asynccontextmanager
async def _store_for(request: web.Request, role: Role) -> AsyncIterator[RoomStore]:
    """The store of the request's room, once its token may act on it as `role`."""
    room = request.match_info["room"]
    if not ROOM_NAME.match(room):
        raise web.HTTPNotFound()
    require(request, room, role)
    async with request.app[gate_app_key][rooms_key].store_for(room) as store:
        yield store


async def list_rooms(request: web.Request) -> web.Response:
    """Every room of the registry the operator's grant covers, and the routes of each."""
    gate = request.app[gate_app_key]
    names = request[grant_key].visible(await known_rooms(gate[control_redis_key]))
    routes: dict[str, list[dict[str, str]]] = {}
    for name in names:
        async with gate[rooms_key].store_for(name) as store:
            try:
                config = await store.read_config()
            except RoomMissing:
                continue  # deleted meanwhile
        routes[name] = [route.as_json() for route in stored_routes(config.routes, name)]
    return web.json_response({"rooms": names, "routes": routes})


async def room_document(request: web.Request, store: RoomStore) -> dict[str, Any]:
    config, counters = await store.read_room()
    gate = request.app[gate_app_key]
    served = gate[rooms_key].get(store.room)
    view = (served or gate[rooms_key].first).view
    here = served is not None
    measured = view.measured_rate_per_minute() if here else None
    rates = {name: None if value is None else round(value, 2) for name, value in (
        ("passed_over_per_minute", view.passed_over_per_minute() if here else None),
        ("frontier_per_minute", view.frontier_per_minute() if here else None))}
    # The room's decision as this process's last tick saw it (only for its own room).
    snapshot = view.snapshot if here else None
    effective = None if snapshot is None else round(snapshot.effective_rate, 2)
    backend = None if snapshot is None or snapshot.config.rate_mode != "adaptive" else (
        "down" if snapshot.backend_down else "up")
    return {
        "room": store.room,
        "rate_per_minute": config.rate_per_minute,
        "mode": config.mode,
        "message": config.message,
        "session_minutes": config.session_minutes,
        "opens_at": None if config.opens_at is None
        else dt.datetime.fromtimestamp(config.opens_at, dt.UTC).isoformat(),
        "max_active_sessions": config.max_active_sessions,
        "challenge_bits": config.challenge_bits,
        "challenge_bits_max": config.challenge_bits_max,
        "challenge_join_rate": config.challenge_join_rate,
        # What new visitors are asked now, and the room's join rate it follows (from this
        # process's last tick, only for its own room).
        "challenge_bits_now": None if snapshot is None else snapshot.challenge_bits_now,
        "join_rate_per_minute": None if snapshot is None else round(snapshot.join_rate, 2),
        "measured_rate_per_minute": None if measured is None else round(measured, 2),
        **rates,
        "rate_mode": config.rate_mode,
        "rate_min": config.rate_min,
        "rate_max": config.rate_max,
        "effective_rate_per_minute": effective,
        "backend": backend,
        "routes": [route.as_json() for route in stored_routes(config.routes, store.room)],
        **counters,
        "schedule": [schedule_document(entry) for entry in await store.read_schedule()],
    }


def schedule_document(entry: ScheduledChange) -> dict[str, Any]:
    """A pending schedule entry as the API shows it: `set` in the API's names and types,
    as it could be sent again."""
    return {"id": entry.id, "at": int(entry.at) if entry.at.is_integer() else entry.at,
            "set": {API_FIELD_NAMES.get(name, name): _api_value(name, value)
                    for name, value in entry.changes.items()},
            "by": entry.by}


async def get_room(request: web.Request) -> web.Response:
    try:
        async with _store_for(request, Role.VIEWER) as store:
            return web.json_response(await room_document(request, store))
    except RoomMissing:
        return json_error(404, "room_not_found", "No gate has created this room.")


async def _read_body(request: web.Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidBody() from None


class InvalidBody(Exception):
    pass


def _not_found() -> web.Response:
    return json_error(404, "room_not_found", "No gate has created this room (or it was "
                      "deleted).")


async def patch_room(request: web.Request) -> web.Response:
    """Change the fields given; 404 for a room that does not exist."""
    async with _store_for(request, Role.OPERATOR) as store:
        try:
            body = await _read_body(request)
            schedule, body = split_schedule(request, body, required=False)
            changes = validate_changes(body) if body or schedule is None else {}
            if set(changes) & set(RATE_FIELDS) or schedule_sets_rates(schedule):
                # Race: two operators changing the bounds at once may each pass this check
                # against the other's old values; the tick keeps rate_min..rate_max sane.
                config = await store.read_config()
                check_rate_bounds(config, changes)
                check_schedule_rates(config, changes, schedule or ())
            if "routes" in changes:
                await check_routes_free(request, store.room, changes["routes"])
        except InvalidBody:
            return json_error(400, "invalid_json", "The body must be a JSON object.")
        except InvalidChange as exc:
            return json_error(422, "invalid_change", str(exc))
        except RoomMissing:
            return _not_found()
        try:
            await apply_changes(request, store, changes, schedule)
        except RoomMissing:
            return _not_found()
        return web.json_response(await room_document(request, store))


async def put_room(request: web.Request) -> web.Response:
    """Create the room (201) or replace it (200): every field of `ROOM_FIELDS`, those left
    out at their defaults. 409 for a room deleted for good."""
    async with _store_for(request, Role.ADMIN) as store:
        try:
            body = await _read_body(request)
            if not isinstance(body, dict):
                raise InvalidChange("Send a JSON object with the room's fields (an empty "
                                    "object gives every field its default).")
            schedule, rest = split_schedule(request, body, required=True)
            assert isinstance(rest, dict)  # checked above
            body = rest
            defaults = {name: field.put_default(request.app[gate_app_key][settings_key])
                        for name, field in ROOM_FIELDS.items() if name not in body}
            changes = validate_changes({**defaults, **body})
            unset = RoomConfig(0, "queue", "", 1)
            check_rate_bounds(unset, changes)
            check_schedule_rates(unset, changes, schedule or ())
            await check_routes_free(request, store.room, changes.get("routes"))
        except InvalidBody:
            return json_error(400, "invalid_json", "The body must be a JSON object.")
        except InvalidChange as exc:
            return json_error(422, "invalid_change", str(exc))
        if await store.deleted_at() is not None:
            return json_error(409, "room_deleted", "This room was deleted for good; its "
                              "visitors were told its line closed. Choose another name.")
        try:
            await store.read_config()
            created = False
        except RoomMissing:
            # Created as a gate creates its room (the first tick), then set as asked below
            # (so the audit holds every field the operator set). Race: two PUTs creating the
            # same room at once both answer 201; the later one's fields win.
            await store.tick()
            created = True
        await apply_changes(request, store, changes, schedule)
        await store.register_room()  # every gate process serves it from its next tick
        await request.app[gate_app_key][rooms_key].refresh_room(store.room)
        return web.json_response(await room_document(request, store),
                                 status=201 if created else 200)


async def delete_room(request: web.Request) -> web.Response:
    """Close the room for good: mode closed, no routes, off the registry (every process
    stops serving it within a tick). Its visitors' tickets get the closed state."""
    async with _store_for(request, Role.ADMIN) as store:
        operator = request[operator_key]
        if await store.deleted_at() is not None:
            return _not_found()  # deleted before (two at once both answer 200)
        try:
            changed = await store.delete_room(operator=operator)
        except RoomMissing:
            return _not_found()
        log.info("room %s deleted by %s", store.room, operator)
        gate = request.app[gate_app_key]
        for name in changed:
            gate[metrics_key].room_changes.labels(store.room,
                                                  API_FIELD_NAMES.get(name, name)).inc()
        await gate[rooms_key].refresh_room(store.room)
        return web.json_response({"room": store.room, "deleted": True})


def split_schedule(request: web.Request, body: object, *, required: bool
                   ) -> tuple[list[ScheduledChange] | None, object]:
    """The body's `schedule` checked (queue_gate/schedule.py; it lives in a key of its own,
    not in the config hash), and the body without it. `required` (PUT): left out means
    none. Raises `InvalidChange`."""
    if not isinstance(body, dict) or ("schedule" not in body and not required):
        return None, body
    body = dict(body)
    now = request.app[gate_app_key][clock_key]()
    return validate_schedule(body.pop("schedule", []), now=now), body


async def apply_changes(request: web.Request, store: RoomStore,
                        changes: dict[str, str | int | float | None],
                        schedule: list[ScheduledChange] | None = None) -> None:
    """Write validated changes (and a new schedule) under the operator's name, count them,
    and apply them in this process at once. Raises `RoomMissing`."""
    if await store.deleted_at() is not None:
        raise RoomMissing(store.room)
    operator = request[operator_key]
    changed: tuple[str, ...] = ()
    if changes:
        _, changed = await store.change_config(changes, operator=operator)
    if schedule is not None:
        _, replaced = await store.set_schedule(schedule, operator=operator)
        changed = (*changed, "schedule") if replaced else changed
    log.info("room %s changed by %s: %s%s", store.room, operator, changes,
             "" if schedule is None else f", schedule of {len(schedule)} entries")
    gate = request.app[gate_app_key]
    for name in changed:
        gate[metrics_key].room_changes.labels(store.room, API_FIELD_NAMES.get(name, name)).inc()
    await gate[rooms_key].refresh_room(store.room)


async def check_routes_free(request: web.Request, room: str,
                            routes: str | int | float | None) -> None:
    """No other room of the registry has an identical route (host and path). Race: two PUTs
    racing with the same route for two rooms may both pass; the route table then gives it
    to the first room by name and logs it (queue_gate/rooms.py)."""
    if not isinstance(routes, str):
        return
    gate = request.app[gate_app_key]
    mine = {(route.host, route.path) for route in stored_routes(routes, room)}
    for other in await known_rooms(gate[control_redis_key]):
        if other == room:
            continue
        async with gate[rooms_key].store_for(other) as store:
            try:
                config = await store.read_config()
            except RoomMissing:
                continue
        for route in stored_routes(config.routes, other):
            if (route.host, route.path) in mine:
                # A room the operator's grant does not cover is not named to them.
                owner = f"room {other!r}" if request[grant_key].covers(other) else \
                    "another room"
                raise InvalidChange(f"route {route.host} {route.path} belongs to {owner} "
                                    "already; a route names one room.")


def _mode(value: object) -> str:
    if value not in MODES:
        raise InvalidChange(f"mode must be one of: {', '.join(MODES)}.")
    return str(value)


def _message(value: object) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > MAX_MESSAGE_LENGTH:
        raise InvalidChange(f"message must be text of at most {MAX_MESSAGE_LENGTH} "
                            "characters (or null to clear it).")
    return value.strip()


def _rate_mode(value: object) -> str:
    if value not in RATE_MODES:
        raise InvalidChange(f"rate_mode must be one of: {', '.join(RATE_MODES)}.")
    return str(value)


def _routes(value: object) -> str | None:
    """Canonical JSON of checked routes; None (the field removed) for none."""
    try:
        routes = parse_routes(value)
    except InvalidRoutes as exc:
        raise InvalidChange(str(exc)) from None
    return routes_json(routes) if routes else None


def _whole(name: str, low: int, high: int) -> Callable[[object], int]:
    return lambda value: _bounded_int(value, name, low, high)


@dataclass(frozen=True, slots=True)
class RoomField:
    """A field of a room as the admin API takes it."""

    # Checks the API's value, returns what the config hash stores (None: the field
    # removed). Raises `InvalidChange` with words for the operator.
    check: Callable[[object], str | int | float | None]
    # What PUT sets when the field is left out (an API value, checked like a sent one).
    put_default: Callable[[Settings], object]
    # The config hash's name (API_FIELD_NAMES maps it back).
    stored_as: str


ROOM_FIELDS: dict[str, RoomField] = {
    "rate_per_minute": RoomField(_whole("rate_per_minute", 0, MAX_RATE_PER_MINUTE),
                                 lambda s: s.initial_rate_per_minute, "rate_per_minute"),
    "mode": RoomField(_mode, lambda s: s.initial_mode, "mode"),
    "message": RoomField(_message, lambda s: s.initial_message, "message"),
    "session_minutes": RoomField(_whole("session_minutes", 1, MAX_SESSION_MINUTES),
                                 lambda s: s.initial_session_minutes, "session_minutes"),
    "opens_at": RoomField(lambda v: _opening_time(v), lambda s: None, "opens_at"),
    "max_active_sessions": RoomField(_whole("max_active_sessions", 0, MAX_ACTIVE_SESSIONS),
                                     lambda s: 0, "max_active"),
    "challenge_bits": RoomField(_whole("challenge_bits", 0, MAX_CHALLENGE_BITS),
                                lambda s: 0, "challenge_bits"),
    # Proof of work rising with the join rate (challenge.py): up to challenge_bits_max
    # from challenge_join_rate joins per minute on; 0 leaves it at challenge_bits.
    "challenge_bits_max": RoomField(_whole("challenge_bits_max", 0, MAX_CHALLENGE_BITS),
                                    lambda s: 0, "challenge_bits_max"),
    "challenge_join_rate": RoomField(
        _whole("challenge_join_rate", 0, MAX_JOIN_RATE_PER_MINUTE), lambda s: 0,
        "challenge_join_rate"),
    # Adaptive admission (queue_gate/health.py): fixed, or between rate_min and rate_max.
    "rate_mode": RoomField(_rate_mode, lambda s: "fixed", "rate_mode"),
    "rate_min": RoomField(_whole("rate_min", 0, MAX_RATE_PER_MINUTE), lambda s: 0, "rate_min"),
    "rate_max": RoomField(_whole("rate_max", 0, MAX_RATE_PER_MINUTE), lambda s: 0, "rate_max"),
    # Which requests the room covers (queue_gate/rooms.py).
    "routes": RoomField(_routes, lambda s: [], "routes"),
}
FIELDS = tuple(name for name in ROOM_FIELDS if name not in ("rate_mode", "rate_min",
                                                            "rate_max"))
RATE_FIELDS = ("rate_mode", "rate_min", "rate_max")
RATE_MODES = ("fixed", "adaptive")


def validate_changes(body: object) -> dict[str, str | int | float | None]:
    """The fields of `body` checked, by their config hash names. Raises `InvalidChange`."""
    if not isinstance(body, dict) or not body:
        raise InvalidChange(f"Send a JSON object with at least one of {', '.join(FIELDS)}.")
    unknown = sorted(set(body) - set(ROOM_FIELDS))
    if unknown:
        raise InvalidChange(f"Unknown field(s): {', '.join(unknown)}.")
    return {field.stored_as: field.check(body[name])
            for name, field in ROOM_FIELDS.items() if name in body}


def check_rate_bounds(config: RoomConfig, changes: dict[str, str | int | float | None]) -> None:
    """0 <= rate_min <= rate_max, with the room's current values for those not sent; an
    adaptive room needs a rate_max above 0."""
    low = changes.get("rate_min", config.rate_min)
    high = changes.get("rate_max", config.rate_max)
    mode = changes.get("rate_mode", config.rate_mode)
    assert isinstance(low, int) and isinstance(high, int)
    if low > high:
        raise InvalidChange(f"rate_min ({low}) must not be above rate_max ({high}).")
    if mode == "adaptive" and high <= 0:
        raise InvalidChange("rate_mode adaptive needs a rate_max above 0 (send rate_max too).")


def validate_schedule(schedule: object, *, now: float) -> list[ScheduledChange]:
    """A room's `schedule` as sent (a list of `{"at": <unix seconds>, "set": {<room
    fields>}}`, each `set` checked like a PATCH body), for `RoomStore.set_schedule`; `[]`
    clears the schedule. `now` is the gate's clock. Raises `InvalidChange` with the reason.
    (Rate bounds depend on the room: `check_schedule_rates`.)"""
    if not isinstance(schedule, list):
        raise InvalidChange('schedule must be a list of {"at": <unix seconds>, "set": '
                            '{<room fields>}} (or [] to clear it).')
    if len(schedule) > SCHEDULE_MAX:
        raise InvalidChange(f"schedule may hold at most {SCHEDULE_MAX} entries "
                            f"({len(schedule)} sent).")
    entries: list[ScheduledChange] = []
    times: set[float] = set()
    for index, item in enumerate(schedule):
        where = f"schedule[{index}]"
        if not isinstance(item, dict) or set(item) != {"at", "set"}:
            raise InvalidChange(f'{where} must be an object with exactly "at" and "set".')
        at = item["at"]
        # A whole number is compared as it is (one too large for a float is just late).
        if isinstance(at, bool) or not isinstance(at, int | float) or (
                isinstance(at, float) and not math.isfinite(at)):
            raise InvalidChange(f"{where}.at must be a time in unix seconds (a number).")
        if at < now - SCHEDULE_LATE_S:
            raise InvalidChange(f"{where}.at lies in the past ({round(now - at)} s ago).")
        if at > now + SCHEDULE_AHEAD_S:
            raise InvalidChange(f"{where}.at lies more than {SCHEDULE_AHEAD_S // 86400} days "
                                "ahead.")
        if float(at) in times:
            raise InvalidChange(f"{where}.at: another entry has the same time; put both "
                                "changes in one entry's set.")
        times.add(float(at))
        try:
            changes = validate_changes(item["set"])
        except InvalidChange as exc:
            raise InvalidChange(f"{where}.set: {exc}") from None
        entries.append(ScheduledChange(float(at), changes))
    return entries


def schedule_sets_rates(schedule: Sequence[ScheduledChange] | None) -> bool:
    return any(set(entry.changes) & set(RATE_FIELDS) for entry in schedule or ())


def check_schedule_rates(config: RoomConfig, changes: dict[str, str | int | float | None],
                         schedule: Sequence[ScheduledChange]) -> None:
    """`check_rate_bounds` for the room as each entry would leave it, in time order,
    starting from `config` with `changes` made."""
    current: dict[str, str | int | float | None] = {
        "rate_min": config.rate_min, "rate_max": config.rate_max,
        "rate_mode": config.rate_mode}
    current.update({name: value for name, value in changes.items() if name in current})
    for entry in sorted(schedule, key=lambda item: item.at):
        step = {name: value for name, value in entry.changes.items() if name in current}
        if not step:
            continue
        try:
            check_rate_bounds(config, {**current, **step})
        except InvalidChange as exc:
            raise InvalidChange(f"schedule entry at {entry.at:.0f}: {exc}") from None
        current.update(step)


def _opening_time(value: object) -> float | None:
    """An ISO 8601 time with its offset (e.g. 2021-01-28T08:00:00+01:00), or null to clear."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.timestamp()
    raise InvalidChange("opens_at must be an ISO 8601 time with its UTC offset, e.g. "
                        "2021-01-28T08:00:00+01:00, or null for no opening time.")


def _bounded_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidChange(f"{name} must be a whole number from {low} to {high}.")
    return value


def audit_entry(raw: dict[str, Any]) -> dict[str, Any]:
    """An audit entry as configure-2.lua stored it, in the API's names and types: the time
    and an opening time in ISO 8601, whole numbers as numbers."""

    def value(name: str, stored: object) -> object:
        if name == "schedule":
            try:
                members = json.loads(str(stored))
            except ValueError:
                return stored
            entries = (ScheduledChange.from_member(json.dumps(member))
                       for member in members if isinstance(members, list))
            return [schedule_document(entry) for entry in entries if entry is not None]
        return _api_value(name, stored)

    name = str(raw.get("field", ""))
    at = raw.get("at")
    return {
        "at": dt.datetime.fromtimestamp(float(at), dt.UTC).isoformat()
        if isinstance(at, int | float) else None,
        "operator": raw.get("operator"),
        "room": raw.get("room"),
        "field": API_FIELD_NAMES.get(name, name),
        "old": value(name, raw.get("old")),
        "new": value(name, raw.get("new")),
    }


def _api_value(name: str, stored: object) -> object:
    """A config hash value in the API's type: an opening time in ISO 8601, whole numbers
    as numbers, text as text."""
    if stored is None or name in ("mode", "message", "rate_mode"):
        return stored
    if name == "opens_at":
        return dt.datetime.fromtimestamp(float(str(stored)), dt.UTC).isoformat()
    try:
        return int(str(stored))
    except ValueError:
        return stored


async def audit(request: web.Request) -> web.Response:
    """GET /admin/audit?room=&limit=: operators' changes, newest first, of one room or of
    every room."""
    raw_limit = request.query.get("limit", str(AUDIT_DEFAULT_LIMIT))
    if not raw_limit.isascii() or not raw_limit.isdigit() or not (
            1 <= int(raw_limit) <= AUDIT_MAX_LIMIT):
        return json_error(400, "invalid_limit",
                          f"limit must be a whole number from 1 to {AUDIT_MAX_LIMIT}.")
    limit = int(raw_limit)
    gate = request.app[gate_app_key]
    room = request.query.get("room")
    if room is not None and not ROOM_NAME.match(room):
        return json_error(400, "invalid_room", "room must be a room's name (1-40 lowercase "
                          "letters, digits, '-' or '_').")
    if room is not None:
        require(request, room, Role.VIEWER)
    rooms = [room] if room is not None else request[grant_key].visible(
        await known_rooms(gate[control_redis_key]))
    entries: list[dict[str, Any]] = []
    for name in rooms:
        store = RoomStore(gate[control_redis_key], gate[settings_key], room=name)
        try:
            entries.extend(await store.read_audit(limit))
        finally:
            await store.aclose()
    entries.sort(key=lambda entry: entry.get("at") or 0, reverse=True)
    return web.json_response({"entries": [audit_entry(e) for e in entries[:limit]]},
                             headers=NO_STORE)


async def metrics(request: web.Request) -> web.Response:
    from queue_gate.agents import observe_active

    await observe_active(request.app[gate_app_key])
    registry = request.app[gate_app_key][metrics_key].registry
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def healthz(request: web.Request) -> web.Response:
    """Whether this process's view of every room it serves is fresh."""
    rooms = request.app[gate_app_key][rooms_key]
    fresh = {room.name: room.view.fresh for room in rooms}
    ok = all(fresh.values())
    return web.json_response({"ok": ok, "room": rooms.first.name, "rooms": fresh},
                             status=200 if ok else 503)


def create_admin_app(gate_app: web.Application) -> web.Application:
    """The admin app for `gate_app`; start it after the gate app (it uses its resources)."""
    app = web.Application(middlewares=[admin_middleware])
    app[gate_app_key] = gate_app
    app.router.add_get("/admin/rooms", list_rooms)
    app.router.add_get("/admin/rooms/{room}", get_room)
    app.router.add_patch("/admin/rooms/{room}", patch_room)
    app.router.add_put("/admin/rooms/{room}", put_room)
    app.router.add_delete("/admin/rooms/{room}", delete_room)
    app.router.add_get("/admin/audit", audit)
    # Call-centre agents' passes: queue_gate/agents.py.
    from queue_gate.agents import install as install_agents

    install_agents(app)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    # The operators' console (pages for a browser) at /console: queue_gate/console.py.
    from queue_gate.console import install as install_console

    install_console(app, gate_app)
    return app
