"""Settings of one gate process: a frozen dataclass built from the environment by `from_env`.

Every variable is read through `vaccine_queue.config.Env`, with the meaning both services
share: unset or empty takes the default, flags are 1/0, true/false, yes/no or on/off, and
every error names the variable. The checks live in `__post_init__`, so settings built in
code (tests, the demo) are held to the same rules; their messages name the variable too.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from queue_gate.operators import FULL, ROOM_SEPARATOR, Grant, parse_grant
from vaccine_queue.config import Env, SettingsError
from vaccine_queue.contract import PASS_FREE_PREFIXES
from vaccine_queue.site import SiteSettings

MODES = ("queue", "paused", "passthrough", "closed")
DEFAULT_POLL_MIN_S = 2.0
DEFAULT_POLL_MAX_S = 120.0
ROOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# An operator's name in QUEUE_GATE_ADMIN_TOKENS, as the audit records it.
OPERATOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# QUEUE_GATE_BYPASS_PATHS when unset: what the booking backend serves without a pass (its
# confirmation, managing a booking, its static files); the demo adds its inbox. "none"
# queues every path (a backend that guards nothing by itself).
DEFAULT_BYPASS_PATHS = PASS_FREE_PREFIXES
DEMO_BYPASS_PATHS = (*PASS_FREE_PREFIXES, "/demo")
# One entry of QUEUE_GATE_BYPASS_PATHS.
BYPASS_PATH = re.compile(r"^/[A-Za-z0-9/_.-]{0,99}$")
# QUEUE_GATE_DEFAULT_ROOM's word for "requests no route covers go straight to the backend".
NO_DEFAULT_ROOM = "none"
# The operator QUEUE_GATE_ADMIN_TOKEN stands for.
SHARED_OPERATOR = "admin"

# Whole-number fields with their variable and least value.
_AT_LEAST = {
    "initial_rate_per_minute": ("QUEUE_GATE_RATE_PER_MINUTE", 0),
    "initial_session_minutes": ("QUEUE_GATE_SESSION_MINUTES", 1),
    "ticket_max_age_s": ("QUEUE_GATE_TICKET_MAX_AGE_S", 1),
    "join_limit": ("QUEUE_GATE_JOIN_LIMIT", 0),
    "join_window_s": ("QUEUE_GATE_JOIN_WINDOW_S", 1),
    "pass_max_browsers": ("QUEUE_GATE_PASS_MAX_BROWSERS", 1),
    "backend_max_connections": ("QUEUE_GATE_BACKEND_MAX_CONNECTIONS", 1),
    "draw_limit": ("QUEUE_GATE_DRAW_LIMIT", 0),
    "challenge_wait_s": ("QUEUE_GATE_CHALLENGE_WAIT_S", 1),
    "agent_passes_max": ("QUEUE_GATE_AGENT_PASSES_MAX", 1),
    "agent_pass_max_browsers": ("QUEUE_GATE_AGENT_PASS_MAX_BROWSERS", 1),
    "notify_minutes": ("QUEUE_GATE_NOTIFY_MINUTES", 1),
}
# Durations that must be above zero, with their variable.
_POSITIVE = {
    "tick_interval_s": "QUEUE_GATE_TICK_INTERVAL_S",
    "poll_min_s": "QUEUE_GATE_POLL_MIN_S",
    "poll_max_s": "QUEUE_GATE_POLL_MAX_S",
    "backend_timeout_s": "QUEUE_GATE_BACKEND_TIMEOUT_S",
    "backend_pool_wait_s": "QUEUE_GATE_BACKEND_POOL_WAIT_S",
    "backend_latency_target_s": "QUEUE_GATE_BACKEND_LATENCY_TARGET_S",
}


@dataclass(frozen=True)
class Settings:
    """Everything a gate deployment configures; comments name the environment variable."""

    # A single Redis; with Sentinel, the master's database and password (its host is ignored);
    # with Cluster, any node of the cluster.
    redis_url: str = "redis://127.0.0.1:6379/0"  # REDIS_URL
    # host:port of each Sentinel watching the master named QUEUE_GATE_REDIS_MASTER.
    redis_sentinels: tuple[str, ...] = ()  # QUEUE_GATE_REDIS_SENTINELS
    redis_master: str = ""  # QUEUE_GATE_REDIS_MASTER
    redis_cluster: bool = False  # QUEUE_GATE_REDIS_CLUSTER
    # Refuse to start on a Redis with neither persistence (AOF or RDB) nor a replica.
    require_durable_redis: bool = False  # QUEUE_GATE_REQUIRE_DURABLE_REDIS
    # QUEUE_GATE_SECRETS, newest first: the newest signs, all of them verify.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    admin_token: str = field(default="", repr=False)  # QUEUE_GATE_ADMIN_TOKEN
    # Named operators, "name:token" each: the audit of changes records who made them
    # (QUEUE_GATE_ADMIN_TOKEN, if set too, is the operator "admin").
    admin_tokens: tuple[str, ...] = field(default=(), repr=False)  # QUEUE_GATE_ADMIN_TOKENS
    # What named operators may do, "name=role" (every room) or "name=role:room+room" each,
    # role viewer, operator or admin (queue_gate/operators.py); an operator not named here,
    # and "admin", is the admin of every room.
    operator_grants: tuple[str, ...] = ()  # QUEUE_GATE_OPERATOR_GRANTS
    backend_url: str = "http://127.0.0.1:8082"  # BACKEND_URL
    room: str = "default"  # QUEUE_GATE_ROOM
    demo: bool = False  # QUEUE_GATE_DEMO
    # Used only the first time a room is created in Redis; afterwards the room's live
    # configuration (changed through the admin API) wins, so a restart never undoes it.
    initial_rate_per_minute: int = 60  # QUEUE_GATE_RATE_PER_MINUTE
    initial_mode: str = "queue"  # QUEUE_GATE_MODE
    initial_session_minutes: int = 15  # QUEUE_GATE_SESSION_MINUTES
    initial_message: str = ""  # QUEUE_GATE_MESSAGE
    ticket_max_age_s: int = 24 * 3600  # QUEUE_GATE_TICKET_MAX_AGE_S
    tick_interval_s: float = 0.25  # QUEUE_GATE_TICK_INTERVAL_S
    poll_min_s: float = DEFAULT_POLL_MIN_S  # QUEUE_GATE_POLL_MIN_S
    poll_max_s: float = DEFAULT_POLL_MAX_S  # QUEUE_GATE_POLL_MAX_S
    # A visitor not seen for this long is passed over without using an admission; 0 = off.
    # At least twice poll_max_s, so a visitor who polls as told is never taken for gone.
    abandon_grace_s: float = 300.0  # QUEUE_GATE_ABANDON_GRACE_S
    # Pre-queued visitors count as present this long after the draw, before their first poll.
    draw_grace_s: float = 30.0  # QUEUE_GATE_DRAW_GRACE_S
    # Joins per network address (IPv4 address, IPv6 /64) and window; care homes, families
    # and mobile carriers' shared addresses must fit, bots with one address must not.
    join_limit: int = 300  # QUEUE_GATE_JOIN_LIMIT
    join_window_s: int = 600  # QUEUE_GATE_JOIN_WINDOW_S
    trusted_networks: tuple[str, ...] = ()  # QUEUE_GATE_TRUSTED_NETWORKS
    trusted_proxies: tuple[str, ...] = ()  # QUEUE_GATE_TRUSTED_PROXIES
    # Browsers (network prefix + user agent) one pass may be used from.
    pass_max_browsers: int = 4  # QUEUE_GATE_PASS_MAX_BROWSERS
    timezone: str = "Europe/Berlin"  # QUEUE_GATE_TIMEZONE
    cookie_secure: bool = True  # QUEUE_GATE_COOKIE_SECURE (default: on, off in demo mode)
    template_dir: Path | None = None  # QUEUE_GATE_TEMPLATE_DIR
    backend_timeout_s: float = 60.0  # QUEUE_GATE_BACKEND_TIMEOUT_S
    backend_max_connections: int = 200  # QUEUE_GATE_BACKEND_MAX_CONNECTIONS
    # Pre-queue entries (draws of the opening lottery) per network address and opening,
    # apart from the join limit: one draw per person, a household's few; 0 = no limit.
    draw_limit: int = 4  # QUEUE_GATE_DRAW_LIMIT
    # Seconds a browser without JavaScript waits instead of solving a room's proof of work.
    challenge_wait_s: int = 30  # QUEUE_GATE_CHALLENGE_WAIT_S
    # Adaptive admission: how long a request waits for one of those connections before it
    # gets a 503 with Retry-After, and the p95 latency above which the backend counts as
    # in trouble (the room's effective rate then falls).
    backend_pool_wait_s: float = 2.0  # QUEUE_GATE_BACKEND_POOL_WAIT_S
    backend_latency_target_s: float = 1.0  # QUEUE_GATE_BACKEND_LATENCY_TARGET_S
    # Path prefixes proxied to the backend without a pass and without asking Redis: what a
    # citizen needs after their session ended (the confirmation, managing a booking by its
    # code, the static files). "/manage" covers "/manage" and "/manage/...", not "/manager".
    bypass_paths: tuple[str, ...] = ()  # QUEUE_GATE_BYPASS_PATHS
    # The room of requests no route covers (queue_gate/rooms.py): unset or empty, the room
    # above; "none" sends them straight to the backend, without a pass (know what it opens).
    default_room: str = ""  # QUEUE_GATE_DEFAULT_ROOM
    # Call-centre agents' passes (agents.py): how many may be active per room at once, how
    # many browsers one may be used from (the agent's own: 1), and the networks they are
    # honoured from (the call centre's; empty: anywhere).
    agent_passes_max: int = 50  # QUEUE_GATE_AGENT_PASSES_MAX
    agent_pass_max_browsers: int = 1  # QUEUE_GATE_AGENT_PASS_MAX_BROWSERS
    agent_networks: tuple[str, ...] = ()  # QUEUE_GATE_AGENT_NETWORKS
    # A message when the turn is near (issue 16): the booking backend's admin address, where
    # the gate asks for it, and the token it asks with (BOOKING_NOTIFY_TOKEN there); unset:
    # the waiting page offers no message.
    notify_url: str = ""  # QUEUE_GATE_NOTIFY_URL
    notify_token: str = field(default="", repr=False)  # QUEUE_GATE_NOTIFY_TOKEN
    # The message goes when about this many minutes remain; the place is kept without
    # polling until the message plus QUEUE_GATE_NOTIFY_GRACE_S.
    notify_minutes: int = 10  # QUEUE_GATE_NOTIFY_MINUTES
    notify_grace_s: float = 900.0  # QUEUE_GATE_NOTIFY_GRACE_S
    # The site's address as visitors reach it (https://impfen.example), for the links in
    # messages; unset: the address the visitor used when asking for the message.
    public_url: str = ""  # QUEUE_GATE_PUBLIC_URL
    # SITE_SERVICE_NAME, SITE_OPERATOR, SITE_IMPRESSUM_URL, SITE_PRIVACY_URL: who runs the
    # site, read by the backend too (vaccine_queue/site.py)
    site: SiteSettings = field(default_factory=SiteSettings)

    def __post_init__(self) -> None:
        self._check_bypass_paths()
        if not ROOM_NAME.match(self.room):
            raise SettingsError(f"QUEUE_GATE_ROOM must be 1-40 lowercase letters, digits, "
                                f"'-' or '_', starting with a letter or digit, not {self.room!r}")
        if self.default_room not in ("", NO_DEFAULT_ROOM) and not ROOM_NAME.match(
                self.default_room):
            raise SettingsError("QUEUE_GATE_DEFAULT_ROOM must be a room's name (1-40 lowercase "
                                "letters, digits, '-' or '_') or 'none', not "
                                f"{self.default_room[:40]!r}")
        self._check_redis()
        if self.initial_mode not in MODES:
            raise SettingsError(f"QUEUE_GATE_MODE must be one of {', '.join(MODES)}, "
                                f"not {self.initial_mode!r}")
        for name, (variable, least) in _AT_LEAST.items():
            if getattr(self, name) < least:
                raise SettingsError(f"{variable} must be at least {least}, "
                                    f"not {getattr(self, name)}")
        for name, variable in _POSITIVE.items():
            if not getattr(self, name) > 0:
                raise SettingsError(f"{variable} must be above 0, not {getattr(self, name):g}")
        if self.poll_max_s < self.poll_min_s:
            raise SettingsError(f"QUEUE_GATE_POLL_MAX_S ({self.poll_max_s:g}) must not be "
                                f"below QUEUE_GATE_POLL_MIN_S ({self.poll_min_s:g})")
        if self.abandon_grace_s and self.abandon_grace_s < 2 * self.poll_max_s:
            raise SettingsError(f"QUEUE_GATE_ABANDON_GRACE_S must be 0 (off) or at least twice "
                                f"QUEUE_GATE_POLL_MAX_S ({2 * self.poll_max_s:g}), "
                                f"not {self.abandon_grace_s:g}")
        if self.abandon_grace_s < 0 or self.draw_grace_s < 0:
            raise SettingsError("QUEUE_GATE_ABANDON_GRACE_S and QUEUE_GATE_DRAW_GRACE_S "
                                "cannot be negative")
        for variable, networks in (("QUEUE_GATE_TRUSTED_NETWORKS", self.trusted_networks),
                                   ("QUEUE_GATE_TRUSTED_PROXIES", self.trusted_proxies),
                                   ("QUEUE_GATE_AGENT_NETWORKS", self.agent_networks)):
            for network in networks:
                try:
                    ipaddress.ip_network(network, strict=False)
                except ValueError:
                    raise SettingsError(f"{variable}: {network!r} is not a network "
                                        "(e.g. 10.0.0.0/8)") from None
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"QUEUE_GATE_TIMEZONE: unknown time zone {self.timezone!r}"
                                ) from None
        if not self.secrets:
            raise SettingsError(
                "QUEUE_GATE_SECRETS is required (comma-separated, newest first); "
                "demo mode generates one"
            )
        if not self.admin_token and not self.admin_tokens:
            raise SettingsError("QUEUE_GATE_ADMIN_TOKEN or QUEUE_GATE_ADMIN_TOKENS is "
                                "required; demo mode generates one")
        self._check_operators()
        self._check_notify()

    def _check_notify(self) -> None:
        if bool(self.notify_url) != bool(self.notify_token):
            raise SettingsError("QUEUE_GATE_NOTIFY_URL and QUEUE_GATE_NOTIFY_TOKEN go "
                                "together: the booking backend's admin address and the "
                                "token it knows as BOOKING_NOTIFY_TOKEN")
        for variable, url in (("QUEUE_GATE_NOTIFY_URL", self.notify_url),
                              ("QUEUE_GATE_PUBLIC_URL", self.public_url)):
            if url and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
                raise SettingsError(f"{variable} must be an http(s) address, not {url[:40]!r}")
        if self.notify_grace_s < 0:
            raise SettingsError("QUEUE_GATE_NOTIFY_GRACE_S cannot be negative")

    @property
    def notify_enabled(self) -> bool:
        return bool(self.notify_url)

    @property
    def notify_link_max_age_s(self) -> int:
        """How long a restore link works: twice the minutes announced and the grace period
        (estimates err; a link of yesterday must not)."""
        return int(2 * (self.notify_minutes * 60 + self.notify_grace_s))

    def _check_bypass_paths(self) -> None:
        for path in self.bypass_paths:
            if (not BYPASS_PATH.match(path) or path.rstrip("/") in ("", "/queue")
                    or path.startswith("/queue/") or "/." in path):
                raise SettingsError("QUEUE_GATE_BYPASS_PATHS: each entry is a path prefix "
                                    "such as /manage (letters, digits, '/', '-', '_', '.'; not "
                                    f"/ itself, nothing under /queue), not {path[:40]!r}")

    def _check_operators(self) -> None:
        names: set[str] = {SHARED_OPERATOR} if self.admin_token else set()
        tokens: set[str] = {self.admin_token} if self.admin_token else set()
        for item in self.admin_tokens:
            name, colon, token = item.partition(":")
            if not colon or not OPERATOR_NAME.match(name) or not token:
                raise SettingsError("QUEUE_GATE_ADMIN_TOKENS: each entry is name:token (a "
                                    "name of letters, digits, '.', '_', '@' or '-', then a "
                                    f"token), not one starting {name[:12]!r}")
            if name in names:
                raise SettingsError(f"QUEUE_GATE_ADMIN_TOKENS: operator {name!r} named twice"
                                    + (" ('admin' is QUEUE_GATE_ADMIN_TOKEN's)"
                                       if name == SHARED_OPERATOR else ""))
            if token in tokens:
                raise SettingsError(f"QUEUE_GATE_ADMIN_TOKENS: operator {name!r} shares a "
                                    "token with another: the audit could not tell them apart")
            names.add(name)
            tokens.add(token)
        self._check_grants(names)

    def _check_grants(self, operators: set[str]) -> None:
        granted: set[str] = set()
        for entry in self.operator_grants:
            try:
                name, grant = parse_grant(entry)
            except ValueError as exc:
                raise SettingsError(f"QUEUE_GATE_OPERATOR_GRANTS: {exc}") from None
            for room in sorted(grant.rooms or ()):
                if not ROOM_NAME.match(room):
                    raise SettingsError(
                        f"QUEUE_GATE_OPERATOR_GRANTS: {name[:64]!r}: the rooms are '*' or "
                        f"room names joined by '{ROOM_SEPARATOR}' (1-40 lowercase letters, "
                        f"digits, '-' or '_'), not {room[:40]!r}")
            if name == SHARED_OPERATOR and self.admin_token:
                raise SettingsError("QUEUE_GATE_OPERATOR_GRANTS: 'admin' is "
                                    "QUEUE_GATE_ADMIN_TOKEN's, the admin of every room; give "
                                    "a limited token a name of its own")
            if name not in operators:
                raise SettingsError(f"QUEUE_GATE_OPERATOR_GRANTS: {name[:64]!r} is not an "
                                    "operator of QUEUE_GATE_ADMIN_TOKENS")
            if name in granted:
                raise SettingsError(f"QUEUE_GATE_OPERATOR_GRANTS: operator {name!r} named "
                                    "twice")
            granted.add(name)

    @property
    def operators(self) -> tuple[tuple[str, str], ...]:
        """(name, token) of every operator who may use the admin API."""
        named = tuple((name, token) for name, _, token in
                      (item.partition(":") for item in self.admin_tokens))
        return (((SHARED_OPERATOR, self.admin_token),) if self.admin_token else ()) + named

    def grant_of(self, operator: str) -> Grant:
        """What `operator` may do: their QUEUE_GATE_OPERATOR_GRANTS entry, else everything."""
        for entry in self.operator_grants:
            name, grant = parse_grant(entry)
            if name == operator:
                return grant
        return FULL

    def _check_redis(self) -> None:
        """One way to reach Redis, fully named."""
        if self.redis_sentinels and self.redis_cluster:
            raise SettingsError("QUEUE_GATE_REDIS_SENTINELS and QUEUE_GATE_REDIS_CLUSTER "
                                "exclude each other: Sentinel watches one master, a cluster "
                                "has many")
        if bool(self.redis_sentinels) != bool(self.redis_master):
            raise SettingsError("QUEUE_GATE_REDIS_SENTINELS and QUEUE_GATE_REDIS_MASTER go "
                                "together: the Sentinels and the name of the master they "
                                "watch")
        for address in self.redis_sentinels:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise SettingsError(f"QUEUE_GATE_REDIS_SENTINELS: {address!r} is not "
                                    "host:port (e.g. sentinel-1:26379)")

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of each Sentinel (checked at construction)."""
        return tuple((host.strip("[]"), int(port)) for host, _, port in
                     (address.rpartition(":") for address in self.redis_sentinels))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: object) -> Settings:
        """Build settings from environment variables; `overrides` (e.g. CLI flags) win."""
        env = Env(environ)
        demo = env.flag("QUEUE_GATE_DEMO", cls.demo)
        found: dict[str, object] = {
            "redis_url": env.text("REDIS_URL", cls.redis_url),
            "redis_sentinels": env.items("QUEUE_GATE_REDIS_SENTINELS"),
            "redis_master": env.text("QUEUE_GATE_REDIS_MASTER"),
            "redis_cluster": env.flag("QUEUE_GATE_REDIS_CLUSTER", cls.redis_cluster),
            "require_durable_redis": env.flag("QUEUE_GATE_REQUIRE_DURABLE_REDIS",
                                              cls.require_durable_redis),
            "secrets": env.items("QUEUE_GATE_SECRETS"),
            "admin_token": env.text("QUEUE_GATE_ADMIN_TOKEN"),
            "admin_tokens": env.items("QUEUE_GATE_ADMIN_TOKENS"),
            "operator_grants": env.items("QUEUE_GATE_OPERATOR_GRANTS"),
            "backend_url": env.text("BACKEND_URL", cls.backend_url),
            "room": env.text("QUEUE_GATE_ROOM", cls.room),
            "demo": demo,
            "initial_rate_per_minute": env.integer("QUEUE_GATE_RATE_PER_MINUTE",
                                                   cls.initial_rate_per_minute),
            "initial_mode": env.text("QUEUE_GATE_MODE", cls.initial_mode),
            "initial_session_minutes": env.integer("QUEUE_GATE_SESSION_MINUTES",
                                                   cls.initial_session_minutes),
            "initial_message": env.text("QUEUE_GATE_MESSAGE", cls.initial_message),
            "ticket_max_age_s": env.integer("QUEUE_GATE_TICKET_MAX_AGE_S",
                                            cls.ticket_max_age_s),
            "tick_interval_s": env.number("QUEUE_GATE_TICK_INTERVAL_S", cls.tick_interval_s),
            "poll_min_s": env.number("QUEUE_GATE_POLL_MIN_S", cls.poll_min_s),
            "poll_max_s": env.number("QUEUE_GATE_POLL_MAX_S", cls.poll_max_s),
            "abandon_grace_s": env.number("QUEUE_GATE_ABANDON_GRACE_S", cls.abandon_grace_s),
            "draw_grace_s": env.number("QUEUE_GATE_DRAW_GRACE_S", cls.draw_grace_s),
            "join_limit": env.integer("QUEUE_GATE_JOIN_LIMIT", cls.join_limit),
            "join_window_s": env.integer("QUEUE_GATE_JOIN_WINDOW_S", cls.join_window_s),
            "trusted_networks": env.items("QUEUE_GATE_TRUSTED_NETWORKS"),
            "trusted_proxies": env.items("QUEUE_GATE_TRUSTED_PROXIES"),
            "pass_max_browsers": env.integer("QUEUE_GATE_PASS_MAX_BROWSERS",
                                             cls.pass_max_browsers),
            "timezone": env.text("QUEUE_GATE_TIMEZONE", cls.timezone),
            "cookie_secure": env.flag("QUEUE_GATE_COOKIE_SECURE", not demo),
            "template_dir": env.path("QUEUE_GATE_TEMPLATE_DIR"),
            "backend_timeout_s": env.number("QUEUE_GATE_BACKEND_TIMEOUT_S",
                                            cls.backend_timeout_s),
            "backend_max_connections": env.integer("QUEUE_GATE_BACKEND_MAX_CONNECTIONS",
                                                   cls.backend_max_connections),
            "draw_limit": env.integer("QUEUE_GATE_DRAW_LIMIT", cls.draw_limit),
            "challenge_wait_s": env.integer("QUEUE_GATE_CHALLENGE_WAIT_S",
                                            cls.challenge_wait_s),
            "backend_pool_wait_s": env.number("QUEUE_GATE_BACKEND_POOL_WAIT_S",
                                              cls.backend_pool_wait_s),
            "backend_latency_target_s": env.number("QUEUE_GATE_BACKEND_LATENCY_TARGET_S",
                                                   cls.backend_latency_target_s),
            "bypass_paths": tuple(path for path in env.items(
                "QUEUE_GATE_BYPASS_PATHS", DEMO_BYPASS_PATHS if demo else DEFAULT_BYPASS_PATHS)
                if path != "none"),
            "default_room": env.text("QUEUE_GATE_DEFAULT_ROOM"),
            "agent_passes_max": env.integer("QUEUE_GATE_AGENT_PASSES_MAX",
                                            cls.agent_passes_max),
            "agent_pass_max_browsers": env.integer("QUEUE_GATE_AGENT_PASS_MAX_BROWSERS",
                                                   cls.agent_pass_max_browsers),
            "agent_networks": env.items("QUEUE_GATE_AGENT_NETWORKS"),
            "notify_url": env.text("QUEUE_GATE_NOTIFY_URL"),
            "notify_token": env.text("QUEUE_GATE_NOTIFY_TOKEN"),
            "notify_minutes": env.integer("QUEUE_GATE_NOTIFY_MINUTES", cls.notify_minutes),
            "notify_grace_s": env.number("QUEUE_GATE_NOTIFY_GRACE_S", cls.notify_grace_s),
            "public_url": env.text("QUEUE_GATE_PUBLIC_URL"),
            "site": SiteSettings.from_env(env),
        }
        found.update(overrides)
        if demo:
            found = _with_demo_credentials(found)
        return cls(**found)  # type: ignore[arg-type]


def _with_demo_credentials(found: dict[str, object]) -> dict[str, object]:
    """Demo mode generates what production must be given; main() says so in the log."""
    if not found.get("secrets"):
        found["secrets"] = (secrets.token_urlsafe(32),)
    if not found.get("admin_token") and not found.get("admin_tokens"):
        found["admin_token"] = secrets.token_urlsafe(18)
    return found
