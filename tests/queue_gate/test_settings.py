"""Settings from the environment: refuse to run without secrets, except in demo mode."""

from __future__ import annotations

import pytest

from queue_gate.settings import Settings, SettingsError


def test_refuses_to_start_without_secrets() -> None:
    with pytest.raises(SettingsError, match="QUEUE_GATE_SECRETS"):
        Settings.from_env({"QUEUE_GATE_ADMIN_TOKEN": "t"})
    with pytest.raises(SettingsError, match="ADMIN_TOKEN"):
        Settings.from_env({"QUEUE_GATE_SECRETS": "s"})


def test_demo_generates_what_is_missing_and_hides_it() -> None:
    settings = Settings.from_env({"QUEUE_GATE_DEMO": "1"})
    assert settings.demo
    assert settings.secrets and len(settings.secrets[0]) >= 32
    assert settings.admin_token
    assert not settings.cookie_secure
    assert settings.secrets[0] not in repr(settings)
    assert settings.admin_token not in repr(settings)


def test_reads_every_variable() -> None:
    settings = Settings.from_env({
        "REDIS_URL": "redis://r:1/2", "QUEUE_GATE_SECRETS": " new , old ,",
        "QUEUE_GATE_ADMIN_TOKEN": "tok", "BACKEND_URL": "http://b:1",
        "QUEUE_GATE_ROOM": "lower-saxony", "QUEUE_GATE_RATE_PER_MINUTE": "250",
        "QUEUE_GATE_MODE": "paused", "QUEUE_GATE_MESSAGE": "Opens at 8:00",
        "QUEUE_GATE_SESSION_MINUTES": "20", "QUEUE_GATE_POLL_MAX_S": "30",
    })
    assert settings.secrets == ("new", "old")
    assert (settings.redis_url, settings.backend_url, settings.room) == (
        "redis://r:1/2", "http://b:1", "lower-saxony")
    assert (settings.initial_rate_per_minute, settings.initial_mode,
            settings.initial_message, settings.initial_session_minutes) == (
        250, "paused", "Opens at 8:00", 20)
    assert settings.poll_max_s == 30
    assert settings.cookie_secure


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"QUEUE_GATE_RATE_PER_MINUTE": "fast"}, "whole number"),
        ({"QUEUE_GATE_MODE": "open"}, "mode"),
        ({"QUEUE_GATE_ROOM": "Bad Room"}, "room name"),
        ({"QUEUE_GATE_COOKIE_SECURE": "maybe"}, "COOKIE_SECURE"),
        ({"QUEUE_GATE_POLL_MIN_S": "x"}, "number"),
    ],
)
def test_malformed_settings_are_named(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        Settings.from_env({"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "t", **env})
