"""Settings of one gate process: a frozen dataclass built from the environment by `from_env`."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("queue", "paused", "passthrough", "closed")
DEFAULT_POLL_MIN_S = 2.0
DEFAULT_POLL_MAX_S = 120.0
ROOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Newest first, as in QUEUE_GATE_SECRETS; the newest signs, all of them verify.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    admin_token: str = field(default="", repr=False)
    backend_url: str = "http://127.0.0.1:8082"
    room: str = "default"
    demo: bool = False
    # Used only the first time a room is created in Redis; afterwards the room's live
    # configuration (changed through the admin API) wins, so a restart never undoes it.
    initial_rate_per_minute: int = 60
    initial_mode: str = "queue"
    initial_session_minutes: int = 15
    initial_message: str = ""
    ticket_max_age_s: int = 24 * 3600
    tick_interval_s: float = 0.25
    poll_min_s: float = DEFAULT_POLL_MIN_S
    poll_max_s: float = DEFAULT_POLL_MAX_S
    # A visitor not seen for this long is passed over without using an admission; 0 = off.
    # At least twice poll_max_s, so a visitor who polls as told is never taken for gone.
    abandon_grace_s: float = 300.0
    # Pre-queued visitors count as present this long after the draw, before their first poll.
    draw_grace_s: float = 30.0
    # Joins per network address (IPv4 address, IPv6 /64) and window; care homes, families
    # and mobile carriers' shared addresses must fit, bots with one address must not.
    join_limit: int = 300
    join_window_s: int = 600
    trusted_networks: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    # Browsers (network prefix + user agent) one pass may be used from.
    pass_max_browsers: int = 4
    timezone: str = "Europe/Berlin"
    cookie_secure: bool = True
    template_dir: Path | None = None
    backend_timeout_s: float = 60.0
    backend_max_connections: int = 200

    def __post_init__(self) -> None:
        if not ROOM_NAME.match(self.room):
            raise SettingsError(
                f"room name {self.room!r} must be 1-40 lowercase letters, digits, '-' or '_'"
            )
        if self.initial_mode not in MODES:
            raise SettingsError(f"initial mode must be one of {', '.join(MODES)}")
        if self.initial_rate_per_minute < 0:
            raise SettingsError("the admission rate cannot be negative")
        if self.initial_session_minutes < 1:
            raise SettingsError("the session must last at least one minute")
        if self.tick_interval_s <= 0 or self.poll_min_s <= 0 or self.poll_max_s < self.poll_min_s:
            raise SettingsError("tick and poll intervals must be positive, min <= max")
        if self.abandon_grace_s and self.abandon_grace_s < 2 * self.poll_max_s:
            raise SettingsError("the abandon grace period must be 0 (off) or at least twice "
                                "the longest poll interval")
        if self.join_limit < 0 or self.join_window_s < 1 or self.pass_max_browsers < 1:
            raise SettingsError("join limit >= 0, join window >= 1 s, pass browsers >= 1")
        for network in (*self.trusted_networks, *self.trusted_proxies):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise SettingsError(f"{network!r} is not a network (e.g. 10.0.0.0/8)") from None
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"unknown time zone {self.timezone!r}") from None
        if not self.secrets:
            raise SettingsError(
                "QUEUE_GATE_SECRETS is required (comma-separated, newest first); "
                "demo mode generates one"
            )
        if not self.admin_token:
            raise SettingsError("QUEUE_GATE_ADMIN_TOKEN is required; demo mode generates one")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from environment variables; `overrides` (e.g. CLI flags) win."""
        env = os.environ if env is None else env
        demo = _flag(env, "QUEUE_GATE_DEMO", False)
        found: dict[str, object] = {"demo": demo}
        if "REDIS_URL" in env:
            found["redis_url"] = env["REDIS_URL"]
        if "BACKEND_URL" in env:
            found["backend_url"] = env["BACKEND_URL"]
        if "QUEUE_GATE_ROOM" in env:
            found["room"] = env["QUEUE_GATE_ROOM"]
        found["secrets"] = tuple(s.strip() for s in env.get("QUEUE_GATE_SECRETS", "").split(",")
                                 if s.strip())
        found["admin_token"] = env.get("QUEUE_GATE_ADMIN_TOKEN", "")
        for name, attr in (
            ("QUEUE_GATE_RATE_PER_MINUTE", "initial_rate_per_minute"),
            ("QUEUE_GATE_SESSION_MINUTES", "initial_session_minutes"),
            ("QUEUE_GATE_BACKEND_MAX_CONNECTIONS", "backend_max_connections"),
            ("QUEUE_GATE_JOIN_LIMIT", "join_limit"),
            ("QUEUE_GATE_JOIN_WINDOW_S", "join_window_s"),
            ("QUEUE_GATE_PASS_MAX_BROWSERS", "pass_max_browsers"),
        ):
            if name in env:
                found[attr] = _int(env, name)
        for name, attr in (
            ("QUEUE_GATE_TICK_INTERVAL_S", "tick_interval_s"),
            ("QUEUE_GATE_POLL_MIN_S", "poll_min_s"),
            ("QUEUE_GATE_POLL_MAX_S", "poll_max_s"),
            ("QUEUE_GATE_BACKEND_TIMEOUT_S", "backend_timeout_s"),
            ("QUEUE_GATE_ABANDON_GRACE_S", "abandon_grace_s"),
            ("QUEUE_GATE_DRAW_GRACE_S", "draw_grace_s"),
        ):
            if name in env:
                found[attr] = _float(env, name)
        if "QUEUE_GATE_MODE" in env:
            found["initial_mode"] = env["QUEUE_GATE_MODE"]
        if "QUEUE_GATE_MESSAGE" in env:
            found["initial_message"] = env["QUEUE_GATE_MESSAGE"]
        if "QUEUE_GATE_TICKET_MAX_AGE_S" in env:
            found["ticket_max_age_s"] = _int(env, "QUEUE_GATE_TICKET_MAX_AGE_S")
        for name, attr in (
            ("QUEUE_GATE_TRUSTED_NETWORKS", "trusted_networks"),
            ("QUEUE_GATE_TRUSTED_PROXIES", "trusted_proxies"),
        ):
            if name in env:
                found[attr] = tuple(n.strip() for n in env[name].split(",") if n.strip())
        if "QUEUE_GATE_TIMEZONE" in env:
            found["timezone"] = env["QUEUE_GATE_TIMEZONE"]
        found["cookie_secure"] = _flag(env, "QUEUE_GATE_COOKIE_SECURE", not demo)
        if env.get("QUEUE_GATE_TEMPLATE_DIR"):
            found["template_dir"] = Path(env["QUEUE_GATE_TEMPLATE_DIR"])
        found.update(overrides)
        if demo:
            found = _with_demo_credentials(found)
        return cls(**found)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _with_demo_credentials(found: dict[str, object]) -> dict[str, object]:
    """Demo mode generates what production must be given; main() says so in the log."""
    if not found.get("secrets"):
        found["secrets"] = (secrets.token_urlsafe(32),)
    if not found.get("admin_token"):
        found["admin_token"] = secrets.token_urlsafe(18)
    return found


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1/0, true/false, yes/no or on/off, not {raw!r}")


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {env[name]!r}") from None


def _float(env: Mapping[str, str], name: str) -> float:
    try:
        return float(env[name])
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {env[name]!r}") from None
