"""Settings from the environment; secrets never in repr."""

from __future__ import annotations

import datetime as dt

import pytest

from booking_backend.settings import PriorityGroup, Settings, SettingsError


def test_from_env_reads_every_kind_of_value() -> None:
    settings = Settings.from_env({
        "BOOKING_REDIS_URL": "redis://db:6380/2", "QUEUE_GATE_SECRETS": "new, old ,",
        "BOOKING_ADMIN_TOKEN": "admintok", "BOOKING_IDENTITY_KEY": "idkey",
        "BOOKING_HOLD_SECONDS": "300", "BOOKING_WAITLIST_SHARE": "0.5",
        "BOOKING_HOME_DISTRICT_ONLY": "1", "BOOKING_PRIORITY_GROUPS": "80:open,70:2021-02-15",
        "BOOKING_SENDER": "webhook", "BOOKING_WEBHOOK_URL": "http://sms/send",
        "BOOKING_WEBHOOK_TOKEN": "hooktok", "BOOKING_DEMO": "0",
    })
    assert settings.redis_url == "redis://db:6380/2"
    assert settings.secrets == ("new", "old")
    assert settings.hold_seconds == 300 and settings.waitlist_share == 0.5
    assert settings.home_district_only and not settings.demo
    assert settings.priority_groups[1] == PriorityGroup(70, dt.date(2021, 2, 15))
    assert settings.check_startable() == []
    shown = repr(settings)
    for secret in ("new", "old", "admintok", "idkey", "hooktok"):
        assert f"'{secret}'" not in shown


@pytest.mark.parametrize(("env", "message"), [
    ({"BOOKING_HOLD_SECONDS": "ten"}, "whole number"),
    ({"BOOKING_DEMO": "maybe"}, "0 or 1"),
    ({"BOOKING_WAITLIST_SHARE": "2"}, "between 0 and 1"),
    ({"BOOKING_PRIORITY_GROUPS": "80:someday"}, "open, closed or YYYY-MM-DD"),
    ({"BOOKING_SENDER": "webhook"}, "BOOKING_WEBHOOK_URL"),
    ({"BOOKING_DEPLOYMENT": "a}b"}, "BOOKING_DEPLOYMENT"),
])
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_defaults_refuse_to_start_outside_demo() -> None:
    with pytest.raises(SettingsError):
        Settings().check_startable()
    assert Settings(demo=True).check_startable() == []
    assert Settings(demo=True, require_pass=False).check_startable()  # a warning to log
