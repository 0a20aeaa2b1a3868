"""Settings of the booking backend: one frozen dataclass, built from the environment by `from_env`.

Every field is used somewhere; secrets never show in `repr`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class PriorityGroup:
    """People aged at least `min_age` may book once the group is open.

    `opens` is None for a group that is not open yet (no date announced), or the day from
    which it is open; `date.min` means open now.
    """

    min_age: int
    opens: dt.date | None

    @property
    def name(self) -> str:
        return f"{self.min_age}+"

    def is_open(self, today: dt.date) -> bool:
        return self.opens is not None and self.opens <= today


OPEN = dt.date.min

DEFAULT_GROUPS: tuple[PriorityGroup, ...] = (
    PriorityGroup(80, OPEN),
    PriorityGroup(70, None),
    PriorityGroup(60, None),
    PriorityGroup(18, None),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a deployment can configure. Field docs name the environment variable."""

    redis_url: str = "redis://127.0.0.1:6379/0"  # BOOKING_REDIS_URL
    deployment: str = "nds"  # BOOKING_DEPLOYMENT: the Redis hash tag, one per state/deployment
    secrets: tuple[str, ...] = field(default=(), repr=False)  # QUEUE_GATE_SECRETS (newest first)
    admin_token: str = field(default="", repr=False)  # BOOKING_ADMIN_TOKEN
    identity_key: str = field(default="", repr=False)  # BOOKING_IDENTITY_KEY (HMAC of persons)
    require_pass: bool = True  # BOOKING_REQUIRE_PASS
    pass_room: str = ""  # BOOKING_PASS_ROOM: when set, only passes of this gate room count
    demo: bool = False  # BOOKING_DEMO
    dev: bool = False  # BOOKING_DEV: explicit development mode (allows REQUIRE_PASS=0)
    timezone: str = "Europe/Berlin"  # BOOKING_TIMEZONE: how times are shown and days counted
    priority_groups: tuple[PriorityGroup, ...] = DEFAULT_GROUPS  # BOOKING_PRIORITY_GROUPS
    invitations_required: bool = False  # BOOKING_INVITATIONS_REQUIRED
    home_district_only: bool = False  # BOOKING_HOME_DISTRICT_ONLY
    hold_seconds: int = 600  # BOOKING_HOLD_SECONDS
    second_dose_min_days: int = 21  # BOOKING_SECOND_DOSE_MIN_DAYS
    second_dose_max_days: int = 42  # BOOKING_SECOND_DOSE_MAX_DAYS
    booking_lead_seconds: int = 3600  # BOOKING_LEAD_SECONDS: earliest first dose from now
    search_days: int = 28  # BOOKING_SEARCH_DAYS: how far ahead first doses are offered
    offers_per_centre: int = 4  # BOOKING_OFFERS_PER_CENTRE
    max_centres: int = 6  # BOOKING_MAX_CENTRES: centres shown per search
    code_validity_seconds: int = 900  # BOOKING_CODE_VALIDITY_SECONDS (from delivery)
    code_max_attempts: int = 5  # BOOKING_CODE_MAX_ATTEMPTS
    code_resend_seconds: int = 60  # BOOKING_CODE_RESEND_SECONDS
    code_max_sends: int = 4  # BOOKING_CODE_MAX_SENDS (first send plus resends)
    cancel_requires_code: bool = True  # BOOKING_CANCEL_REQUIRES_CODE
    waitlist_share: float = 2 / 3  # BOOKING_WAITLIST_SHARE of released pairs
    sender: str = "console"  # BOOKING_SENDER: console | webhook
    webhook_url: str = ""  # BOOKING_WEBHOOK_URL
    webhook_token: str = field(default="", repr=False)  # BOOKING_WEBHOOK_TOKEN (Bearer)
    outbox_worker: bool = True  # BOOKING_OUTBOX_WORKER: 0 = deliver from `cli outbox-worker`
    outbox_max_attempts: int = 6  # BOOKING_OUTBOX_MAX_ATTEMPTS
    outbox_poll_seconds: float = 1.0  # BOOKING_OUTBOX_POLL_SECONDS
    sweep_seconds: float = 15.0  # BOOKING_SWEEP_SECONDS: hold sweeper period
    session_seconds: int = 3600  # BOOKING_SESSION_SECONDS
    template_dir: str = ""  # BOOKING_TEMPLATE_DIR: operator overrides, searched first
    max_body_bytes: int = 16 * 1024  # BOOKING_MAX_BODY_BYTES
    demo_days: int = 70  # BOOKING_DEMO_DAYS: how many days of slots the demo generates
    secure_cookies: bool = False  # BOOKING_SECURE_COOKIES: set behind HTTPS

    def __post_init__(self) -> None:
        if not self.deployment.replace("-", "").replace("_", "").isalnum():
            raise SettingsError("BOOKING_DEPLOYMENT may hold letters, digits, - and _ only")
        if not 0 <= self.waitlist_share <= 1:
            raise SettingsError("BOOKING_WAITLIST_SHARE must be between 0 and 1")
        if not 0 < self.second_dose_min_days <= self.second_dose_max_days:
            raise SettingsError("second dose interval: 0 < MIN_DAYS <= MAX_DAYS")
        if self.sender not in ("console", "webhook"):
            raise SettingsError("BOOKING_SENDER must be console or webhook")
        if self.sender == "webhook" and not self.webhook_url:
            raise SettingsError("BOOKING_SENDER=webhook needs BOOKING_WEBHOOK_URL")
        positive = ("hold_seconds", "code_validity_seconds", "code_max_attempts",
                    "session_seconds")
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")

    @property
    def dev_or_demo(self) -> bool:
        return self.dev or self.demo

    def check_startable(self) -> list[str]:
        """Refuse unsafe combinations; return warnings to log. Raises `SettingsError`."""
        warnings: list[str] = []
        if not self.require_pass:
            if not self.dev_or_demo:
                raise SettingsError(
                    "BOOKING_REQUIRE_PASS=0 is for development only: set BOOKING_DEV=1 "
                    "or BOOKING_DEMO=1 as well"
                )
            warnings.append("admission passes are NOT checked (BOOKING_REQUIRE_PASS=0)")
        if not self.dev_or_demo:
            if not self.secrets:
                raise SettingsError("QUEUE_GATE_SECRETS is required outside demo/dev mode")
            if not self.identity_key:
                raise SettingsError("BOOKING_IDENTITY_KEY is required outside demo/dev mode")
            if not self.admin_token:
                raise SettingsError("BOOKING_ADMIN_TOKEN is required outside demo/dev mode")
        return warnings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        kwargs: dict[str, object] = {}

        def text(var: str, name: str) -> None:
            if var in source:
                kwargs[name] = source[var].strip()

        def integer(var: str, name: str) -> None:
            if var in source:
                try:
                    kwargs[name] = int(source[var])
                except ValueError as exc:
                    raise SettingsError(f"{var} must be a whole number") from exc

        def number(var: str, name: str) -> None:
            if var in source:
                try:
                    kwargs[name] = float(source[var])
                except ValueError as exc:
                    raise SettingsError(f"{var} must be a number") from exc

        def flag(var: str, name: str) -> None:
            if var in source:
                kwargs[name] = parse_flag(var, source[var])

        text("REDIS_URL", "redis_url")  # shared with the gate; BOOKING_REDIS_URL wins
        text("BOOKING_REDIS_URL", "redis_url")
        text("BOOKING_DEPLOYMENT", "deployment")
        if "QUEUE_GATE_SECRETS" in source:
            kwargs["secrets"] = tuple(
                s.strip() for s in source["QUEUE_GATE_SECRETS"].split(",") if s.strip()
            )
        text("BOOKING_ADMIN_TOKEN", "admin_token")
        text("BOOKING_IDENTITY_KEY", "identity_key")
        flag("BOOKING_REQUIRE_PASS", "require_pass")
        text("BOOKING_PASS_ROOM", "pass_room")
        flag("BOOKING_DEMO", "demo")
        flag("BOOKING_DEV", "dev")
        text("BOOKING_TIMEZONE", "timezone")
        if "BOOKING_PRIORITY_GROUPS" in source:
            kwargs["priority_groups"] = parse_groups(source["BOOKING_PRIORITY_GROUPS"])
        flag("BOOKING_INVITATIONS_REQUIRED", "invitations_required")
        flag("BOOKING_HOME_DISTRICT_ONLY", "home_district_only")
        integer("BOOKING_HOLD_SECONDS", "hold_seconds")
        integer("BOOKING_SECOND_DOSE_MIN_DAYS", "second_dose_min_days")
        integer("BOOKING_SECOND_DOSE_MAX_DAYS", "second_dose_max_days")
        integer("BOOKING_LEAD_SECONDS", "booking_lead_seconds")
        integer("BOOKING_SEARCH_DAYS", "search_days")
        integer("BOOKING_OFFERS_PER_CENTRE", "offers_per_centre")
        integer("BOOKING_MAX_CENTRES", "max_centres")
        integer("BOOKING_CODE_VALIDITY_SECONDS", "code_validity_seconds")
        integer("BOOKING_CODE_MAX_ATTEMPTS", "code_max_attempts")
        integer("BOOKING_CODE_RESEND_SECONDS", "code_resend_seconds")
        integer("BOOKING_CODE_MAX_SENDS", "code_max_sends")
        flag("BOOKING_CANCEL_REQUIRES_CODE", "cancel_requires_code")
        number("BOOKING_WAITLIST_SHARE", "waitlist_share")
        text("BOOKING_SENDER", "sender")
        text("BOOKING_WEBHOOK_URL", "webhook_url")
        text("BOOKING_WEBHOOK_TOKEN", "webhook_token")
        flag("BOOKING_OUTBOX_WORKER", "outbox_worker")
        integer("BOOKING_OUTBOX_MAX_ATTEMPTS", "outbox_max_attempts")
        number("BOOKING_OUTBOX_POLL_SECONDS", "outbox_poll_seconds")
        number("BOOKING_SWEEP_SECONDS", "sweep_seconds")
        integer("BOOKING_SESSION_SECONDS", "session_seconds")
        text("BOOKING_TEMPLATE_DIR", "template_dir")
        integer("BOOKING_MAX_BODY_BYTES", "max_body_bytes")
        integer("BOOKING_DEMO_DAYS", "demo_days")
        flag("BOOKING_SECURE_COOKIES", "secure_cookies")
        return cls(**kwargs)  # type: ignore[arg-type]


def parse_flag(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{var} must be 0 or 1")


def parse_groups(raw: str) -> tuple[PriorityGroup, ...]:
    """Parse `80:open,70:2021-02-15,60:closed` (minimum age, then open / closed / opening day)."""
    groups: list[PriorityGroup] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        age_text, _, state = part.partition(":")
        try:
            min_age = int(age_text)
        except ValueError as exc:
            raise SettingsError(f"BOOKING_PRIORITY_GROUPS: bad age in {part!r}") from exc
        state = state.strip().lower() or "open"
        opens: dt.date | None
        if state == "open":
            opens = OPEN
        elif state == "closed":
            opens = None
        else:
            try:
                opens = dt.date.fromisoformat(state)
            except ValueError as exc:
                raise SettingsError(
                    f"BOOKING_PRIORITY_GROUPS: {part!r} needs open, closed or YYYY-MM-DD"
                ) from exc
        groups.append(PriorityGroup(min_age, opens))
    if not groups:
        raise SettingsError("BOOKING_PRIORITY_GROUPS lists no group")
    return tuple(sorted(groups, key=lambda g: -g.min_age))
