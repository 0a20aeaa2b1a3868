"""Settings from the environment: one meaning for every flag (as the gate's), errors that
name the variable, secure cookies unless in demo/dev mode; secrets never in repr."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from booking_backend.settings import PriorityGroup, Settings
from tests.booking_backend.conftest import MakeEnv
from vaccine_queue.config import SettingsError


def test_from_env_reads_every_kind_of_value() -> None:
    settings = Settings.from_env({
        "BOOKING_DATABASE_URL": "postgresql://bk:pw@db:5433/bk", "QUEUE_GATE_SECRETS": "new, old ,",
        "BOOKING_ADMIN_TOKEN": "admintok", "BOOKING_IDENTITY_KEY": "idkey",
        "BOOKING_HOLD_SECONDS": "300", "BOOKING_WAITLIST_SHARE": "0.5",
        "BOOKING_HOME_DISTRICT_ONLY": "1", "BOOKING_PRIORITY_GROUPS": "80:open,70:2021-02-15",
        "BOOKING_SENDER": "webhook", "BOOKING_WEBHOOK_URL": "http://sms/send",
        "BOOKING_WEBHOOK_TOKEN": "hooktok", "BOOKING_DEMO": "0",
        "SITE_OPERATOR": "Land X",
    })
    assert settings.database_url == "postgresql://bk:pw@db:5433/bk"
    assert settings.secrets == ("new", "old")
    assert settings.hold_seconds == 300 and settings.waitlist_share == 0.5
    assert settings.home_district_only and not settings.demo
    assert settings.priority_groups[1] == PriorityGroup(70, dt.date(2021, 2, 15))
    assert settings.check_startable() == []
    shown = repr(settings)
    for secret in ("new", "old", "admintok", "idkey", "hooktok", "pw"):
        assert f"'{secret}'" not in shown


def test_empty_means_default() -> None:
    """An empty variable (as `VAR=` in a compose file leaves it) is the default, for flags
    too: it used to switch the pass check and the cancellation code off."""
    empty = {name: "" for name in (
        "BOOKING_REQUIRE_PASS", "BOOKING_CANCEL_REQUIRES_CODE", "BOOKING_OUTBOX_WORKER",
        "BOOKING_HOLD_SECONDS", "BOOKING_SENDER", "BOOKING_TIMEZONE", "BOOKING_DATABASE_URL",
        "BOOKING_PRIORITY_GROUPS", "BOOKING_COOKIE_SECURE", "BOOKING_WAITLIST_SHARE")}
    assert Settings.from_env({**empty, "BOOKING_OUTBOX_WORKER": "  "}) == Settings()
    flags = Settings.from_env({"BOOKING_REQUIRE_PASS": "off", "BOOKING_DEV": "yes",
                               "BOOKING_CANCEL_REQUIRES_CODE": "False"})
    assert (flags.require_pass, flags.dev, flags.cancel_requires_code) == (False, True, False)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, True),
    ({"BOOKING_DEMO": "1"}, False),
    ({"BOOKING_DEV": "1"}, False),
    ({"BOOKING_DEMO": "1", "BOOKING_COOKIE_SECURE": "1"}, True),
    ({"BOOKING_COOKIE_SECURE": "0"}, False),
])
def test_secure_cookies_unless_demo_or_dev(env: dict[str, str], expected: bool) -> None:
    assert Settings.from_env(env).cookie_secure is expected


@pytest.mark.parametrize(("env", "variable", "message"), [
    ({"BOOKING_HOLD_SECONDS": "ten"}, "BOOKING_HOLD_SECONDS", "whole number"),
    ({"BOOKING_HOLD_SECONDS": "0"}, "BOOKING_HOLD_SECONDS", "at least 1"),
    ({"BOOKING_CODE_MAX_ATTEMPTS": "-1"}, "BOOKING_CODE_MAX_ATTEMPTS", "at least 1"),
    ({"BOOKING_DEMO": "maybe"}, "BOOKING_DEMO", "1/0, true/false"),
    ({"BOOKING_COOKIE_SECURE": "sometimes"}, "BOOKING_COOKIE_SECURE", "1/0, true/false"),
    ({"BOOKING_WAITLIST_SHARE": "2"}, "BOOKING_WAITLIST_SHARE", "at most 1"),
    ({"BOOKING_OUTBOX_POLL_SECONDS": "soon"}, "BOOKING_OUTBOX_POLL_SECONDS", "a number"),
    ({"BOOKING_PRIORITY_GROUPS": "80:someday"}, "BOOKING_PRIORITY_GROUPS",
     "open, closed or YYYY-MM-DD"),
    ({"BOOKING_PRIORITY_GROUPS": "old:open"}, "BOOKING_PRIORITY_GROUPS", "minimum age"),
    ({"BOOKING_SENDER": "pigeon"}, "BOOKING_SENDER", "console, webhook"),
    ({"BOOKING_SENDER": "webhook"}, "BOOKING_WEBHOOK_URL", "needs"),
    ({"BOOKING_DEPLOYMENT": "a}b"}, "BOOKING_DEPLOYMENT", "letters, digits"),
    ({"BOOKING_TIMEZONE": "Mars/Olympus"}, "BOOKING_TIMEZONE", "time zone"),
    ({"BOOKING_SECOND_DOSE_MIN_DAYS": "50"}, "BOOKING_SECOND_DOSE_MIN_DAYS",
     "BOOKING_SECOND_DOSE_MAX_DAYS"),
])
def test_bad_values_are_named(env: dict[str, str], variable: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        Settings.from_env(env)
    assert variable in str(raised.value)


def test_defaults_refuse_to_start_outside_demo() -> None:
    with pytest.raises(SettingsError, match="QUEUE_GATE_SECRETS"):
        Settings().check_startable()
    assert Settings(demo=True).check_startable() == []
    assert Settings(demo=True, require_pass=False).check_startable()  # a warning to log


def test_the_console_sender_refuses_to_start_outside_demo_and_dev() -> None:
    """It writes codes to the log: a booking could be completed from the log alone."""
    from booking_backend.verification import ConsoleSender

    ready = Settings(secrets=("s",), identity_key="k", admin_token="t")
    with pytest.raises(SettingsError, match="BOOKING_SENDER"):
        ready.check_startable()
    with pytest.raises(SettingsError, match="demo/dev"):
        ConsoleSender(demo_or_dev=False)
    assert dataclasses.replace(ready, dev=True).check_startable() == []
    ConsoleSender(demo_or_dev=True)


async def test_secure_cookies_are_marked_secure(make_env: MakeEnv) -> None:
    env = await make_env(cookie_secure=True)
    async with env.client.get("/?lang=en", headers=env.headers()) as resp:
        assert resp.status == 200
        cookies = resp.cookies
    assert cookies["bk_session"]["secure"] and cookies["bk_session"]["httponly"]
    assert cookies["lang"]["secure"]
