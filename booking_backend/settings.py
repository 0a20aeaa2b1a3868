"""Settings of the booking backend: one frozen dataclass, built from the environment by `from_env`.

Every variable is read through `vaccine_queue.config.Env`, with the meaning both services
share: unset or empty takes the default, flags are 1/0, true/false, yes/no or on/off, and
every error names the variable. Every field is used somewhere; secrets never show in `repr`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field

from vaccine_queue.config import Env, SettingsError
from vaccine_queue.site import SiteSettings


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

# Fields that must be at least 1, with the variable that sets each.
_POSITIVE = {
    "hold_seconds": "BOOKING_HOLD_SECONDS",
    "code_validity_seconds": "BOOKING_CODE_VALIDITY_SECONDS",
    "code_max_attempts": "BOOKING_CODE_MAX_ATTEMPTS",
    "session_seconds": "BOOKING_SESSION_SECONDS",
    "retention_days": "BOOKING_RETENTION_DAYS",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a deployment can configure. Field docs name the environment variable."""

    # BOOKING_DATABASE_URL: the PostgreSQL system of record (postgresql://user@host/db);
    # hidden from repr, as it may carry a password
    database_url: str = field(default="postgresql://127.0.0.1:5432/booking", repr=False)
    database_pool_size: int = 20  # BOOKING_DATABASE_POOL_SIZE: connections per process
    # BOOKING_DATABASE_ACQUIRE_TIMEOUT_SECONDS: how long a request waits for a busy pool
    # before it answers 503 with Retry-After
    database_acquire_timeout: float = 10.0
    # BOOKING_DATABASE_STATEMENT_TIMEOUT_SECONDS: a hung query never hangs a request forever
    database_statement_timeout: float = 10.0
    deployment: str = "nds"  # BOOKING_DEPLOYMENT: names the deployment (one per state)
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
    # BOOKING_NOTIFY_TOKEN: the queue gate's Bearer token for asking for "your turn is near"
    # messages on the admin port (POST /internal/turn-near); empty: nobody may ask
    notify_token: str = field(default="", repr=False)
    outbox_worker: bool = True  # BOOKING_OUTBOX_WORKER: 0 = deliver from `cli outbox-worker`
    outbox_max_attempts: int = 6  # BOOKING_OUTBOX_MAX_ATTEMPTS
    outbox_poll_seconds: float = 1.0  # BOOKING_OUTBOX_POLL_SECONDS
    sweep_seconds: float = 15.0  # BOOKING_SWEEP_SECONDS: hold sweeper period
    session_seconds: int = 3600  # BOOKING_SESSION_SECONDS
    # BOOKING_RETENTION_DAYS: names, birth dates and contacts of a booking leave this many
    # days after its second appointment (or its cancellation): `booking-backend purge`
    retention_days: int = 30
    template_dir: str = ""  # BOOKING_TEMPLATE_DIR: operator overrides, searched first
    max_body_bytes: int = 16 * 1024  # BOOKING_MAX_BODY_BYTES
    demo_days: int = 70  # BOOKING_DEMO_DAYS: how many days of slots the demo generates
    # BOOKING_COOKIE_SECURE: `Secure` on our cookies; from the environment on by default and
    # off in demo/dev mode, as the gate's QUEUE_GATE_COOKIE_SECURE.
    cookie_secure: bool = True
    # SITE_SERVICE_NAME, SITE_OPERATOR, SITE_IMPRESSUM_URL, SITE_PRIVACY_URL: who runs the
    # site, read by the gate too (vaccine_queue/site.py)
    site: SiteSettings = field(default_factory=SiteSettings)

    def __post_init__(self) -> None:
        if not self.deployment.replace("-", "").replace("_", "").isalnum():
            raise SettingsError("BOOKING_DEPLOYMENT may hold letters, digits, - and _ only, "
                                f"not {self.deployment!r}")
        if not 0 <= self.waitlist_share <= 1:
            raise SettingsError("BOOKING_WAITLIST_SHARE must be between 0 and 1, "
                                f"not {self.waitlist_share:g}")
        if not 0 < self.second_dose_min_days <= self.second_dose_max_days:
            raise SettingsError(
                "BOOKING_SECOND_DOSE_MIN_DAYS must be at least 1 and at most "
                f"BOOKING_SECOND_DOSE_MAX_DAYS, not {self.second_dose_min_days} and "
                f"{self.second_dose_max_days}")
        if self.sender not in ("console", "webhook"):
            raise SettingsError(f"BOOKING_SENDER must be console or webhook, not {self.sender!r}")
        if self.sender == "webhook" and not self.webhook_url:
            raise SettingsError("BOOKING_SENDER=webhook needs BOOKING_WEBHOOK_URL")
        for name, variable in _POSITIVE.items():
            if getattr(self, name) <= 0:
                raise SettingsError(f"{variable} must be at least 1, not {getattr(self, name)}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"BOOKING_TIMEZONE must name a time zone such as Europe/Berlin, "
                f"not {self.timezone!r}") from None

    @property
    def dev_or_demo(self) -> bool:
        return self.dev or self.demo

    def check_startable(self, *, own_sender: bool = False) -> list[str]:
        """Refuse unsafe combinations; return warnings to log. Raises `SettingsError`.
        `own_sender`: the caller delivers messages with a sender of its own (tests)."""
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
            if self.sender == "console" and not own_sender:
                raise SettingsError(
                    "BOOKING_SENDER=console writes codes to the log: demo/dev mode only "
                    "(set BOOKING_SENDER=webhook)")
            if self.site.is_demo:
                warnings.append("the pages name a demo operator: set SITE_SERVICE_NAME, "
                                "SITE_OPERATOR, SITE_IMPRESSUM_URL and SITE_PRIVACY_URL")
        return warnings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every setting from its variable; unset or empty means the default."""
        env = Env(environ)
        d = cls()
        demo = env.flag("BOOKING_DEMO", d.demo)
        dev = env.flag("BOOKING_DEV", d.dev)
        groups = env.raw("BOOKING_PRIORITY_GROUPS")
        return cls(
            database_url=env.text("BOOKING_DATABASE_URL", d.database_url),
            database_pool_size=env.integer("BOOKING_DATABASE_POOL_SIZE", d.database_pool_size,
                                           minimum=1),
            database_acquire_timeout=env.number("BOOKING_DATABASE_ACQUIRE_TIMEOUT_SECONDS",
                                                d.database_acquire_timeout, minimum=0.01),
            database_statement_timeout=env.number(
                "BOOKING_DATABASE_STATEMENT_TIMEOUT_SECONDS", d.database_statement_timeout,
                minimum=0.01),
            deployment=env.text("BOOKING_DEPLOYMENT", d.deployment),
            secrets=env.items("QUEUE_GATE_SECRETS"),
            admin_token=env.text("BOOKING_ADMIN_TOKEN"),
            identity_key=env.text("BOOKING_IDENTITY_KEY"),
            require_pass=env.flag("BOOKING_REQUIRE_PASS", d.require_pass),
            pass_room=env.text("BOOKING_PASS_ROOM"),
            demo=demo,
            dev=dev,
            timezone=env.text("BOOKING_TIMEZONE", d.timezone),
            priority_groups=d.priority_groups if groups is None else parse_groups(groups),
            invitations_required=env.flag("BOOKING_INVITATIONS_REQUIRED",
                                          d.invitations_required),
            home_district_only=env.flag("BOOKING_HOME_DISTRICT_ONLY", d.home_district_only),
            hold_seconds=env.integer("BOOKING_HOLD_SECONDS", d.hold_seconds, minimum=1),
            second_dose_min_days=env.integer("BOOKING_SECOND_DOSE_MIN_DAYS",
                                             d.second_dose_min_days, minimum=1),
            second_dose_max_days=env.integer("BOOKING_SECOND_DOSE_MAX_DAYS",
                                             d.second_dose_max_days, minimum=1),
            booking_lead_seconds=env.integer("BOOKING_LEAD_SECONDS", d.booking_lead_seconds,
                                             minimum=0),
            search_days=env.integer("BOOKING_SEARCH_DAYS", d.search_days, minimum=1),
            offers_per_centre=env.integer("BOOKING_OFFERS_PER_CENTRE", d.offers_per_centre,
                                          minimum=1),
            max_centres=env.integer("BOOKING_MAX_CENTRES", d.max_centres, minimum=1),
            code_validity_seconds=env.integer("BOOKING_CODE_VALIDITY_SECONDS",
                                              d.code_validity_seconds, minimum=1),
            code_max_attempts=env.integer("BOOKING_CODE_MAX_ATTEMPTS", d.code_max_attempts,
                                          minimum=1),
            code_resend_seconds=env.integer("BOOKING_CODE_RESEND_SECONDS",
                                            d.code_resend_seconds, minimum=0),
            code_max_sends=env.integer("BOOKING_CODE_MAX_SENDS", d.code_max_sends, minimum=1),
            cancel_requires_code=env.flag("BOOKING_CANCEL_REQUIRES_CODE",
                                          d.cancel_requires_code),
            waitlist_share=env.number("BOOKING_WAITLIST_SHARE", d.waitlist_share,
                                      minimum=0, maximum=1),
            sender=env.choice("BOOKING_SENDER", d.sender, ("console", "webhook")),
            webhook_url=env.text("BOOKING_WEBHOOK_URL"),
            webhook_token=env.text("BOOKING_WEBHOOK_TOKEN"),
            notify_token=env.text("BOOKING_NOTIFY_TOKEN"),
            outbox_worker=env.flag("BOOKING_OUTBOX_WORKER", d.outbox_worker),
            outbox_max_attempts=env.integer("BOOKING_OUTBOX_MAX_ATTEMPTS",
                                            d.outbox_max_attempts, minimum=1),
            outbox_poll_seconds=env.number("BOOKING_OUTBOX_POLL_SECONDS",
                                           d.outbox_poll_seconds, minimum=0.01),
            sweep_seconds=env.number("BOOKING_SWEEP_SECONDS", d.sweep_seconds, minimum=0.01),
            session_seconds=env.integer("BOOKING_SESSION_SECONDS", d.session_seconds,
                                        minimum=1),
            retention_days=env.integer("BOOKING_RETENTION_DAYS", d.retention_days, minimum=1),
            template_dir=env.text("BOOKING_TEMPLATE_DIR"),
            max_body_bytes=env.integer("BOOKING_MAX_BODY_BYTES", d.max_body_bytes,
                                       minimum=1024),
            demo_days=env.integer("BOOKING_DEMO_DAYS", d.demo_days, minimum=1),
            cookie_secure=env.flag("BOOKING_COOKIE_SECURE", not (demo or dev)),
            site=SiteSettings.from_env(env),
        )


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
        except ValueError:
            raise SettingsError(
                f"BOOKING_PRIORITY_GROUPS: {part!r} must start with a minimum age") from None
        state = state.strip().lower() or "open"
        opens: dt.date | None
        if state == "open":
            opens = OPEN
        elif state == "closed":
            opens = None
        else:
            try:
                opens = dt.date.fromisoformat(state)
            except ValueError:
                raise SettingsError(
                    f"BOOKING_PRIORITY_GROUPS: {part!r} needs open, closed or YYYY-MM-DD"
                ) from None
        groups.append(PriorityGroup(min_age, opens))
    if not groups:
        raise SettingsError("BOOKING_PRIORITY_GROUPS lists no group")
    return tuple(sorted(groups, key=lambda g: -g.min_age))
