"""The operators' console on the admin port: the rooms' figures, changing a room with a
confirmation step, the audit, in German and English; every action works without JavaScript.

A browser cannot send the admin bearer header, so an operator signs in once at
`/console/login` with their operator token (QUEUE_GATE_ADMIN_TOKEN or one of
QUEUE_GATE_ADMIN_TOKENS) and then carries a session cookie (`qg_console`: signed with the
gate's QUEUE_GATE_SECRETS and a salt of its own, HttpOnly, SameSite=Strict, path
`/console`, valid for a working day). The cookie names the operator and holds a fingerprint
of their token: rotating the token ends their sessions. Every form carries a CSRF token (the
session id signed with a salt of its own). A change made here takes the API's path
(`validate_changes`, `RoomStore.change_config`) and is audited under the operator's name.
The operator's grant (queue_gate/operators.py), read from the settings at every request,
decides what they see: only the rooms it covers (another room is "not found", as in the
API), and the change forms only with the role operator or admin (a viewer's change is
refused with a 403 page).

    GET  /console/login                     sign-in form
    POST /console/login                     token -> session cookie
    POST /console/logout                    end the session
    GET  /console/                          every room with its figures
    GET  /console/rooms/{room}              one room: figures, its line over the last hour,
                                            forms to change rate, mode and message, session
    POST /console/rooms/{room}/change       a change -> the confirmation page (no change yet)
    POST /console/rooms/{room}/apply        the confirmed change -> applied, back to the room
    POST /console/rooms/{room}/schedule/add     a timed change added to the room's schedule
    POST /console/rooms/{room}/schedule/remove  a pending timed change taken off it
    GET  /console/rooms/{room}/figures.json the figures, for the page's script (same session)
    GET  /console/audit                     operators' changes, newest first

The line over the last hour is this process's own record (`LineHistory`): its room's
snapshot sampled every `SAMPLE_EVERY_S`, no Redis round trip; other rooms have none here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import importlib.resources
import logging
import zoneinfo
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from queue_gate.admin import (
    API_FIELD_NAMES,
    MAX_MESSAGE_LENGTH,
    MAX_RATE_PER_MINUTE,
    MAX_SESSION_MINUTES,
    SCHEDULE_AHEAD_S,
    SCHEDULE_LATE_S,
    InvalidChange,
    audit_entry,
    room_document,
    validate_changes,
)
from queue_gate.keys import (
    clock_key,
    control_redis_key,
    gate_app_key,
    metrics_key,
    room_view_key,
    rooms_key,
    settings_key,
)
from queue_gate.operators import Grant, Role
from queue_gate.settings import MODES, ROOM_NAME, Settings
from queue_gate.store import (
    SCHEDULE_MAX,
    GateUnavailable,
    NotReplicated,
    RoomMissing,
    RoomStore,
    ScheduleConflict,
    ScheduledChange,
    known_rooms,
)
from vaccine_queue.background import background
from vaccine_queue.i18n import Translator, language_middleware, request_language, translator
from vaccine_queue.pages import Pages, Problem, error_middleware
from vaccine_queue.signin import SignedIn as Session
from vaccine_queue.signin import SignIn, read_form, see_other

log = logging.getLogger(__name__)

CONSOLE_PREFIX = "/console"
SESSION_COOKIE = "qg_console"
SESSION_SALT = "queue_gate.console.session.v1"
CSRF_SALT = "queue_gate.console.csrf.v1"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 12 * 3600
# Our own files only: no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; style-src 'self'; script-src 'self'; form-action 'self';"
    " frame-ancestors 'none'"
)
# The line's record: one sample every 10 s, an hour of them.
SAMPLE_EVERY_S = 10.0
HISTORY_S = 3600.0
AUDIT_PAGE_LIMIT = 200
_MAX_FORM_FIELD = MAX_MESSAGE_LENGTH + 100
# The fields the console's forms change, in the order the confirmation lists them.
FORM_FIELDS = ("mode", "message", "rate_per_minute", "session_minutes")
# Words for a refused value, by field (the API's own messages are English).
INVALID_KEYS: Mapping[str, str] = {
    "rate_per_minute": "console.invalid.rate_per_minute",
    "session_minutes": "console.invalid.session_minutes",
    "mode": "console.invalid.mode",
    "message": "console.invalid.message",
    "": "console.invalid.nothing",
}

# The words for each mode and each field (keys spelled out: the catalogue test finds them).
MODE_KEYS: Mapping[str, str] = {
    "queue": "console.mode.queue", "paused": "console.mode.paused",
    "passthrough": "console.mode.passthrough", "closed": "console.mode.closed",
}
FIELD_KEYS: Mapping[str, str] = {
    "mode": "console.field.mode", "message": "console.field.message",
    "rate_per_minute": "console.field.rate_per_minute",
    "session_minutes": "console.field.session_minutes",
    "opens_at": "console.field.opens_at",
    "max_active_sessions": "console.field.max_active_sessions",
    "challenge_bits": "console.field.challenge_bits",
    "rate_mode": "console.field.rate_mode", "rate_min": "console.field.rate_min",
    "rate_max": "console.field.rate_max", "schedule": "console.field.schedule",
    # Issued or revoked (queue_gate/agents.py); its values are the pass: agent and id.
    "agent_pass": "console.field.agent_pass",
}
# The schedule form's fields beside the time (a subset of FORM_FIELDS: empty = unchanged).
SCHEDULE_FIELDS = ("mode", "rate_per_minute", "message")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # the snapshot's time (Redis or the injected clock)
    waiting: int
    admitted: int  # admitted so far (a counter)
    mode: str


class LineHistory:
    """This process's room over the last hour: one sample per `every` seconds of snapshot
    time, read from the room view's snapshot (no Redis call)."""

    def __init__(self, *, every: float = SAMPLE_EVERY_S, keep: float = HISTORY_S) -> None:
        self.every = every
        self.samples: deque[Sample] = deque(maxlen=int(keep // every) + 2)
        self.keep = keep

    def record(self, view: Any) -> None:
        snap = view.snapshot
        if snap is None:
            return
        if self.samples and snap.now - self.samples[-1].at < self.every:
            return
        if self.samples and snap.now < self.samples[-1].at:
            self.samples.clear()  # the clock went back (another Redis): start again
        self.samples.append(Sample(snap.now, snap.waiting, snap.admitted, snap.config.mode))
        while self.samples and snap.now - self.samples[0].at > self.keep:
            self.samples.popleft()

    def points(self) -> list[tuple[float, int, float | None]]:
        """(time, waiting, admitted per minute since the sample before) for each sample."""
        out: list[tuple[float, int, float | None]] = []
        previous: Sample | None = None
        for sample in self.samples:
            rate = None
            if previous is not None and sample.at > previous.at:
                rate = max(0, sample.admitted - previous.admitted) * 60 / (
                    sample.at - previous.at)
            out.append((sample.at, sample.waiting, rate))
            previous = sample
        return out


@dataclass(frozen=True, slots=True)
class Plot:
    """The line as an inline SVG's shapes (drawn by the template, no script)."""

    width: int
    height: int
    waiting_path: str
    admitted_path: str
    max_waiting: int
    max_admitted: float
    last_waiting: int | None
    span_s: float


def plot(points: list[tuple[float, int, float | None]], width: int = 640,
         height: int = 160) -> Plot:
    if len(points) < 2:  # a line needs two samples
        return Plot(width, height, "", "", 0, 0.0, None, 0.0)
    end = points[-1][0]
    start = end - HISTORY_S
    top_waiting = max(1, max(p[1] for p in points))
    top_admitted = max([1.0, *(p[2] for p in points if p[2] is not None)])

    def x(at: float) -> float:
        return round((at - start) / HISTORY_S * width, 1)

    def y(value: float, top: float) -> float:
        return round(height - value / top * (height - 4) - 2, 1)

    waiting = " ".join(f"{'M' if i == 0 else 'L'}{x(at)},{y(count, top_waiting)}"
                       for i, (at, count, _) in enumerate(points))
    rated = [(at, rate) for at, _, rate in points if rate is not None]
    admitted = " ".join(f"{'M' if i == 0 else 'L'}{x(at)},{y(rate, top_admitted)}"
                        for i, (at, rate) in enumerate(rated))
    return Plot(width, height, waiting, admitted, top_waiting, round(top_admitted, 1),
                points[-1][1], end - points[0][0])


def last_in_line_wait(mode: str, rate: float | None, waiting: int) -> float | None:
    """The estimated wait of the last in line (waiting / rate), None when nobody is admitted
    (paused, closed, a rate of 0) and 0 when the gate lets everyone through."""
    if mode == "passthrough":
        return 0.0
    if mode != "queue" or not rate or rate <= 0:
        return None
    return waiting * 60 / rate


def _redis_trouble(request: web.Request, exc: Exception) -> Problem | None:
    if isinstance(exc, NotReplicated):
        log.warning("console: change not confirmed by a replica: %s", exc)
        return Problem("console_not_replicated", 503, retry_after=5)
    if isinstance(exc, GateUnavailable):
        log.warning("console: Redis unavailable: %s", exc)
        return Problem("console_redis_unavailable", 503, retry_after=5)
    return None


class Console:
    """The console's handlers, with what they need injected."""

    def __init__(self, gate: web.Application, history: LineHistory) -> None:
        self.gate = gate
        self.settings: Settings = gate[settings_key]
        self.history = history
        self.pages = Pages("console", timezone=self.settings.timezone,
                           globals={"prefix": CONSOLE_PREFIX, "modes": MODES,
                                    "max_message": MAX_MESSAGE_LENGTH,
                                    "max_rate": MAX_RATE_PER_MINUTE,
                                    "max_session": MAX_SESSION_MINUTES,
                                    "mode_keys": MODE_KEYS, "field_keys": FIELD_KEYS},
                           content_security_policy=CONTENT_SECURITY_POLICY)
        settings = self.settings
        self.signin = SignIn(
            prefix=CONSOLE_PREFIX, cookie=SESSION_COOKIE, purpose="console",
            session_salt=SESSION_SALT, csrf_salt=CSRF_SALT, secret_keys=settings.secrets,
            operators=lambda: settings.operators, secure=settings.cookie_secure,
            max_age_s=SESSION_MAX_AGE_S)

    # -- session ----------------------------------------------------------------------------
    def session(self, request: web.Request) -> Session | None:
        """The signed-in operator, or None (gone, or their token rotated)."""
        return self.signin.read(request)

    def grant(self, session: Session) -> Grant:
        return self.settings.grant_of(session.operator)

    def check(self, session: Session, room: str, role: Role) -> None:
        """As `operators.require`, for pages: a room the grant does not cover is a room
        that does not exist; a role too low is a 403 page."""
        grant = self.grant(session)
        if not grant.covers(room):
            raise Problem("console_room_missing", 404)
        if not grant.allows(room, role):
            raise Problem("console_forbidden", 403)

    async def operators_form(self, request: web.Request, session: Session
                             ) -> tuple[Mapping[str, str], str, Translator]:
        """A form that changes the request's room: its fields (CSRF checked), the room (the
        operator's grant checked) and the words of the request's language."""
        data = await self.form(request)
        self.check_csrf(session, data.get(CSRF_FIELD))
        room = request.match_info["room"]
        self.check(session, room, Role.OPERATOR)
        return data, room, translator(request_language(request))

    def csrf_token(self, session: Session) -> str:
        return self.signin.csrf_token(session.sid)

    def check_csrf(self, session: Session, token: object) -> None:
        self.signin.check_csrf(session.sid, token)

    def signed_in(self, handler: Callable[[Console, web.Request, Session],
                                          Awaitable[web.StreamResponse]]) -> Handler:
        """A page asked for without a session sends the browser to sign in; a form or the
        figures without one are refused with 401."""

        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = self.session(request)
            if session is None:
                if request.method == "GET" and not request.path.endswith(".json"):
                    raise web.HTTPSeeOther(self.signin.login_url(request))
                raise Problem("console_signin_required", 401)
            return await handler(self, request, session)

        return wrapped

    def render(self, request: web.Request, name: str, session: Session | None,
               context: Mapping[str, Any] | None = None, *, status: int = 200) -> web.Response:
        extra: dict[str, Any] = {"operator": None, "csrf": None}
        if session is not None:
            extra = {"operator": session.operator, "csrf": self.csrf_token(session)}
        return self.pages.render(request, name, {**extra, **(context or {})}, status=status)

    # -- forms ----------------------------------------------------------------------------
    @staticmethod
    async def form(request: web.Request) -> dict[str, str]:
        return await read_form(request, _MAX_FORM_FIELD)

    def safe_next(self, raw: str) -> str:
        return self.signin.safe_next(raw)

    @contextlib.asynccontextmanager
    async def store_for(self, room: str) -> AsyncIterator[RoomStore]:
        if not ROOM_NAME.match(room):
            raise Problem("not_found", 404)
        async with self.gate[rooms_key].store_for(room) as store:
            yield store

    async def figures(self, request: web.Request, store: RoomStore) -> dict[str, Any]:
        """The room's document (as `GET /admin/rooms/{room}`) with the console's own
        figures: the rate admissions use, and the last in line's estimated wait."""
        try:
            doc = await room_document(request, store)
        except RoomMissing as exc:
            raise Problem("console_room_missing", 404) from exc
        doc["rate_in_use"] = in_use = rate_in_use(doc)
        doc["last_wait_s"] = last_in_line_wait(doc["mode"], in_use, doc["waiting"])
        doc["here"] = store.room == self.gate[room_view_key].store.room
        return doc

    def changes_of(self, data: Mapping[str, str], t: Translator
                   ) -> dict[str, str | int | float | None]:
        """The form's fields as the API's changes, checked as the API checks them."""
        body: dict[str, object] = {}
        for name in FORM_FIELDS:
            if name not in data:
                continue
            raw = data[name].strip()
            if name in ("rate_per_minute", "session_minutes"):
                if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
                    raise Problem("console_invalid", 422, field=name,
                                  message_key=INVALID_KEYS[name],
                                  params=self.bounds(name, t))
                body[name] = int(raw)
            else:
                body[name] = raw
        if not body:
            raise Problem("console_invalid", 422, message_key=INVALID_KEYS[""])
        try:
            return validate_changes(body)
        except InvalidChange as exc:
            field = next((name for name in FORM_FIELDS if str(exc).startswith(name)), "")
            raise Problem("console_invalid", 422, field=field, message_key=INVALID_KEYS[field],
                          params=self.bounds(field, t)) from exc

    @staticmethod
    def bounds(name: str, t: Translator) -> dict[str, object]:
        """The limits the words of a refused value name, as numbers of the language."""
        high = {"rate_per_minute": MAX_RATE_PER_MINUTE,
                "session_minutes": MAX_SESSION_MINUTES}.get(name, 0)
        low = 1 if name == "session_minutes" else 0
        return {"low": t.number(low), "high": t.number(high), "max": MAX_MESSAGE_LENGTH}

    # -- handlers -------------------------------------------------------------------------
    async def login_page(self, request: web.Request) -> web.Response:
        return self.render(request, "login.html", None,
                           {"next": self.safe_next(request.query.get("next", "")),
                            "wrong": False})

    async def login_submit(self, request: web.Request) -> web.StreamResponse:
        data = await self.form(request)
        target = self.safe_next(data.get("next", ""))
        matched = self.signin.match(data.get("token", ""))
        if matched is None:
            log.info("console: sign-in refused")
            return self.render(request, "login.html", None, {"next": target, "wrong": True},
                               status=401)
        log.info("console: operator %s signed in", matched[0])
        response = see_other(target)
        self.signin.start(response, *matched)
        return response

    async def logout(self, request: web.Request, session: Session) -> web.StreamResponse:
        data = await self.form(request)
        self.check_csrf(session, data.get(CSRF_FIELD))
        response = see_other(f"{CONSOLE_PREFIX}/login")
        self.signin.end(response)
        return response

    async def index(self, request: web.Request, session: Session) -> web.StreamResponse:
        names = self.grant(session).visible(await known_rooms(self.gate[control_redis_key]))
        rooms = []
        for name in names:
            async with self.store_for(name) as store:
                try:
                    rooms.append(await self.figures(request, store))
                except Problem:
                    continue  # listed but gone meanwhile
        return self.render(request, "index.html", session, {"rooms": rooms})

    async def room_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        room = request.match_info["room"]
        self.check(session, room, Role.VIEWER)
        async with self.store_for(room) as store:
            doc = await self.figures(request, store)
            _, version = await store.read_schedule_at()
        return self.render(request, "room.html", session, {
            "room": doc, "line": self.line(doc), "done": request.query.get("done") == "1",
            "may_change": self.grant(session).allows(room, Role.OPERATOR),
            "scheduled": request.query.get("scheduled") == "1", "schedule_version": version,
            "today": dt.datetime.fromtimestamp(self.gate[clock_key](), self.zone).date()})

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.settings.timezone)

    async def schedule_add(self, request: web.Request, session: Session
                           ) -> web.StreamResponse:
        """Add one timed change (a date and time in the deployment's zone, and a mode, a
        rate or a message) to the room's schedule, unless another change of the schedule
        came first since the page was shown."""

        def add(entries: tuple[ScheduledChange, ...], data: Mapping[str, str],
                t: Translator) -> tuple[list[ScheduledChange], str]:
            entry = self.scheduled_change_of(data, entries, t)
            return [*entries, entry], f"scheduled at {entry.at}: {entry.changes}"

        return await self.edit_schedule(request, session, add)

    async def schedule_remove(self, request: web.Request, session: Session
                              ) -> web.StreamResponse:
        def remove(entries: tuple[ScheduledChange, ...], data: Mapping[str, str],
                   t: Translator) -> tuple[list[ScheduledChange], str]:
            kept = [entry for entry in entries if entry.id != data.get("id", "")]
            if len(kept) == len(entries):  # applied or removed meanwhile
                raise Problem("console_schedule_conflict", 409)
            return kept, f"removed scheduled change {data.get('id')}"

        return await self.edit_schedule(request, session, remove)

    async def edit_schedule(
            self, request: web.Request, session: Session,
            edit: Callable[[tuple[ScheduledChange, ...], Mapping[str, str], Translator],
                           tuple[list[ScheduledChange], str]]) -> web.StreamResponse:
        """Replace the room's schedule with `edit`'s list (and log its description), if the
        schedule is still the one the form was made from."""
        data, room, t = await self.operators_form(request, session)
        async with self.store_for(room) as store:
            try:
                entries, _ = await store.read_schedule_at()
                edited, what = edit(entries, data, t)
                await store.set_schedule(edited, operator=session.operator,
                                         read_at=self.read_version(data))
            except Problem as problem:
                return await self.room_with_problem(request, session, store, problem, t)
            except ScheduleConflict:
                return await self.room_with_problem(
                    request, session, store, Problem("console_schedule_conflict", 409), t)
            except RoomMissing as exc:
                raise Problem("console_room_missing", 404) from exc
            log.info("room %s: %s %s (console)", room, session.operator, what)
            self.gate[metrics_key].room_changes.labels(room, "schedule").inc()
        raise web.HTTPSeeOther(f"{CONSOLE_PREFIX}/rooms/{room}?scheduled=1#schedule")

    @staticmethod
    def read_version(data: Mapping[str, str]) -> int:
        """The schedule's version the form was made at (a page of another time conflicts)."""
        raw = data.get("version", "")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise Problem("console_schedule_conflict", 409)
        return int(raw)

    def scheduled_change_of(self, data: Mapping[str, str],
                            entries: tuple[ScheduledChange, ...],
                            t: Translator) -> ScheduledChange:
        """The add form as a schedule entry, checked as the API checks one."""
        try:
            local = dt.datetime.strptime(
                f"{data.get('date', '').strip()} {data.get('time', '').strip()}",
                "%Y-%m-%d %H:%M")
        except ValueError as exc:
            raise Problem("console_invalid", 422, field="when",
                          message_key="console.schedule.invalid_when") from exc
        at = float(int(local.replace(tzinfo=self.zone).timestamp()))
        now = self.gate[clock_key]()
        if at < now - SCHEDULE_LATE_S:
            raise Problem("console_invalid", 422, field="when",
                          message_key="console.schedule.past")
        if at > now + SCHEDULE_AHEAD_S:
            raise Problem("console_invalid", 422, field="when",
                          message_key="console.schedule.far",
                          params={"days": SCHEDULE_AHEAD_S // 86400})
        if any(entry.at == at for entry in entries):
            raise Problem("console_invalid", 422, field="when",
                          message_key="console.schedule.same_time")
        if len(entries) >= SCHEDULE_MAX:
            raise Problem("console_invalid", 422, message_key="console.schedule.full",
                          params={"max": SCHEDULE_MAX})
        fields = {name: data[name] for name in SCHEDULE_FIELDS if data.get(name, "").strip()}
        if data.get("clear_message") == "1":
            fields["message"] = ""
        return ScheduledChange(at, self.changes_of(fields, t))

    async def room_with_problem(self, request: web.Request, session: Session,
                                store: RoomStore, problem: Problem,
                                t: Translator) -> web.Response:
        """The room's page again, with the reason on top (for an operator who may change it:
        the handlers that answer with it checked that)."""
        doc = await self.figures(request, store)
        _, version = await store.read_schedule_at()
        return self.render(request, "room.html", session, {
            "room": doc, "line": self.line(doc), "done": False, "problem": problem,
            "may_change": True,
            "text": problem.message(t), "schedule_version": version, "scheduled": False,
            "today": dt.datetime.fromtimestamp(self.gate[clock_key](), self.zone).date()},
            status=problem.status)

    def line(self, doc: Mapping[str, Any]) -> Plot | None:
        """The room's line over the last hour, if this process keeps it (its own room)."""
        if not doc["here"]:
            return None
        self.history.record(self.gate[room_view_key])
        return plot(self.history.points())

    async def figures_json(self, request: web.Request, session: Session) -> web.Response:
        room = request.match_info["room"]
        self.check(session, room, Role.VIEWER)
        async with self.store_for(room) as store:
            doc = await self.figures(request, store)
        t = translator(request_language(request))
        return web.json_response({**doc, "text": figure_texts(doc, t)},
                                 headers={"Cache-Control": "no-store"})

    async def change(self, request: web.Request, session: Session) -> web.StreamResponse:
        """The confirmation step: what would change, and what it means for the last in
        line. Nothing is written yet."""
        data, room, t = await self.operators_form(request, session)
        async with self.store_for(room) as store:
            doc = await self.figures(request, store)
            try:
                changes = self.changes_of(data, t)
            except Problem as problem:
                return await self.room_with_problem(request, session, store, problem, t)
        new = {**doc, **{API_FIELD_NAMES.get(k, k): v for k, v in changes.items()}}
        new_rate = rate_in_use(new, fallback_measured=False) if (
            "rate_per_minute" in changes) else doc["rate_in_use"]
        new_wait = last_in_line_wait(str(new["mode"]), new_rate, doc["waiting"])
        rows = [(name, doc[name], new[name]) for name in FORM_FIELDS if name in changes]
        # Only what differs (a form sends the message along with the mode), unless nothing.
        differing = [row for row in rows if row[1] != row[2]]
        return self.render(request, "confirm.html", session, {
            "room": doc, "rows": differing or rows,
            "form": {k: data[k] for k in FORM_FIELDS if k in data},
            "old_wait": doc["last_wait_s"], "new_wait": new_wait, "unchanged": not differing})

    async def apply(self, request: web.Request, session: Session) -> web.StreamResponse:
        data, room, t = await self.operators_form(request, session)
        changes = self.changes_of(data, t)
        async with self.store_for(room) as store:
            try:
                _, changed = await store.change_config(changes, operator=session.operator)
            except RoomMissing as exc:
                raise Problem("console_room_missing", 404) from exc
            log.info("room %s changed by %s (console): %s", room, session.operator, changes)
            for name in changed:
                self.gate[metrics_key].room_changes.labels(
                    room, API_FIELD_NAMES.get(name, name)).inc()
            await self.gate[rooms_key].refresh_room(room)  # this process applies it at once
        raise web.HTTPSeeOther(f"{CONSOLE_PREFIX}/rooms/{room}?done=1")

    async def audit(self, request: web.Request, session: Session) -> web.StreamResponse:
        room = request.query.get("room") or None
        if room is not None and not ROOM_NAME.match(room):
            raise Problem("console_room_missing", 404)
        if room is not None:
            self.check(session, room, Role.VIEWER)
        redis = self.gate[control_redis_key]
        rooms = [room] if room is not None else self.grant(session).visible(
            await known_rooms(redis))
        entries: list[dict[str, Any]] = []
        for name in rooms:
            store = RoomStore(redis, self.settings, room=name)
            try:
                entries.extend(await store.read_audit(AUDIT_PAGE_LIMIT))
            finally:
                await store.aclose()
        entries.sort(key=lambda entry: entry.get("at") or 0, reverse=True)
        shown = []
        for raw in entries[:AUDIT_PAGE_LIMIT]:
            entry = audit_entry(raw)
            entry["at_s"] = raw.get("at") if isinstance(raw.get("at"), int | float) else None
            for side in ("old", "new"):
                if isinstance(entry[side], dict):  # an agent pass: who and which
                    entry[side] = f"{entry[side].get('agent')} ({entry[side].get('id')})"
            shown.append(entry)
        return self.render(request, "audit.html", session, {"entries": shown, "room": room})

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {"console.css": "text/css", "console.js": "text/javascript"}
        if name not in types:
            raise Problem("not_found", 404)
        data = (importlib.resources.files("vaccine_queue.templates") / "console" / name
                ).read_bytes()
        response = web.Response(body=data, content_type=types[name])
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        raise Problem("not_found", 404)


def rate_in_use(doc: Mapping[str, Any], *, fallback_measured: bool = True) -> float | None:
    """The rate the room admits at: the adaptive rate of the last tick in adaptive mode,
    else the frontier's measured speed if known, else the setting."""
    if doc.get("rate_mode") == "adaptive" and doc.get("effective_rate_per_minute") is not None:
        return float(doc["effective_rate_per_minute"])
    if fallback_measured and doc.get("frontier_per_minute"):
        return float(doc["frontier_per_minute"])
    return float(doc["rate_per_minute"])


def figure_texts(doc: Mapping[str, Any], t: Translator) -> dict[str, str]:
    """The figures as the page shows them (the script swaps these texts in)."""

    def number(value: object) -> str:
        return "\u2013" if value is None else t.number(float(str(value)))

    cap = doc.get("max_active_sessions") or 0
    return {
        "mode": t(MODE_KEYS[doc["mode"]]) if doc["mode"] in MODE_KEYS else str(doc["mode"]),
        "rate_per_minute": number(doc["rate_per_minute"]),
        "effective_rate_per_minute": number(doc.get("effective_rate_per_minute")),
        "measured_rate_per_minute": number(doc.get("measured_rate_per_minute")),
        "waiting": number(doc["waiting"]),
        "prequeue": number(doc["prequeue"]),
        "admitted": number(doc["admitted"]),
        "present": number(doc.get("present")),
        "left_while_waiting": number(doc["left_while_waiting"]),
        "passes_active": (t("console.sessions_of", n=t.number(doc["passes_active"]),
                                cap=t.number(cap)) if cap
                          else t("console.sessions_uncapped", n=t.number(doc["passes_active"]))),
        "last_wait": wait_text(doc.get("last_wait_s"), t),
    }


def wait_text(seconds: float | None, t: Translator) -> str:
    return t("console.nobody_admitted") if seconds is None else t.duration(seconds)


async def _to_index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(f"{CONSOLE_PREFIX}/")


history_key = web.AppKey("console_history", LineHistory)


def create_console_app(gate: web.Application, *,
                       history: LineHistory | None = None) -> web.Application:
    """The console's pages for `gate`, mounted on the admin app at `CONSOLE_PREFIX`."""
    history = history or LineHistory()
    console = Console(gate, history)
    app = web.Application(middlewares=[
        error_middleware(console.pages, is_api=lambda request: request.path.endswith(".json"),
                         convert=_redis_trouble),
        language_middleware(secure_cookies=console.settings.cookie_secure),
    ])
    app[gate_app_key] = gate
    app[history_key] = history
    console.pages.env.globals.update({
        "wait_text": wait_text, "figure_texts": figure_texts,
        "quote": lambda value: quote(str(value), safe="")})

    async def sampler(app: web.Application) -> AsyncIterator[None]:
        async def sample() -> None:
            while True:
                history.record(gate[room_view_key])
                await asyncio.sleep(history.every / 2)

        async with background(sample(), "console-line-sampler"):
            yield

    app.cleanup_ctx.append(sampler)

    def bound(handler: Callable[[Console, web.Request, Session],
                                Awaitable[web.StreamResponse]]) -> Handler:
        return console.signed_in(handler)

    app.router.add_get("/login", console.login_page)
    app.router.add_post("/login", console.login_submit)
    app.router.add_post("/logout", bound(Console.logout))
    app.router.add_get("/static/{name}", console.static)
    app.router.add_get("/", bound(Console.index))
    app.router.add_get("/audit", bound(Console.audit))
    app.router.add_get("/rooms/{room}", bound(Console.room_page))
    app.router.add_get("/rooms/{room}/figures.json", bound(Console.figures_json))
    app.router.add_post("/rooms/{room}/change", bound(Console.change))
    app.router.add_post("/rooms/{room}/apply", bound(Console.apply))
    app.router.add_post("/rooms/{room}/schedule/add", bound(Console.schedule_add))
    app.router.add_post("/rooms/{room}/schedule/remove", bound(Console.schedule_remove))
    app.router.add_route("*", "/{tail:.*}", console.not_found)
    return app


def install(admin: web.Application, gate: web.Application) -> None:
    """Mount the console on the admin app (`/console` itself leads to it)."""
    admin.router.add_get(CONSOLE_PREFIX, _to_index)
    admin.add_subapp(CONSOLE_PREFIX, create_console_app(gate))
