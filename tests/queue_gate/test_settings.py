"""Settings from the environment: refuse to run without secrets, except in demo mode."""

from __future__ import annotations

import pytest

from queue_gate.settings import Settings
from vaccine_queue.config import SettingsError


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
    ("env", "variable", "what"),
    [
        ({"QUEUE_GATE_RATE_PER_MINUTE": "fast"}, "QUEUE_GATE_RATE_PER_MINUTE", "whole number"),
        ({"QUEUE_GATE_RATE_PER_MINUTE": "-1"}, "QUEUE_GATE_RATE_PER_MINUTE", "at least 0"),
        ({"QUEUE_GATE_MODE": "open"}, "QUEUE_GATE_MODE", "one of queue, paused"),
        ({"QUEUE_GATE_ROOM": "Bad Room"}, "QUEUE_GATE_ROOM", "lowercase"),
        ({"QUEUE_GATE_COOKIE_SECURE": "maybe"}, "QUEUE_GATE_COOKIE_SECURE", "true/false"),
        ({"QUEUE_GATE_POLL_MIN_S": "x"}, "QUEUE_GATE_POLL_MIN_S", "number"),
        ({"QUEUE_GATE_POLL_MIN_S": "0"}, "QUEUE_GATE_POLL_MIN_S", "above 0"),
        ({"QUEUE_GATE_POLL_MAX_S": "1"}, "QUEUE_GATE_POLL_MAX_S", "QUEUE_GATE_POLL_MIN_S"),
        ({"QUEUE_GATE_ABANDON_GRACE_S": "60"}, "QUEUE_GATE_ABANDON_GRACE_S", "twice"),
        ({"QUEUE_GATE_SESSION_MINUTES": "0"}, "QUEUE_GATE_SESSION_MINUTES", "at least 1"),
        ({"QUEUE_GATE_TRUSTED_PROXIES": "10.0.0.0/8, proxy"}, "QUEUE_GATE_TRUSTED_PROXIES",
         "not a network"),
        ({"QUEUE_GATE_TIMEZONE": "Europe/Nowhere"}, "QUEUE_GATE_TIMEZONE", "unknown time zone"),
        ({"QUEUE_GATE_REDIS_SENTINELS": "s1:26379"}, "QUEUE_GATE_REDIS_MASTER", "together"),
        ({"QUEUE_GATE_REDIS_MASTER": "gate"}, "QUEUE_GATE_REDIS_SENTINELS", "together"),
        ({"QUEUE_GATE_REDIS_SENTINELS": "s1", "QUEUE_GATE_REDIS_MASTER": "gate"},
         "QUEUE_GATE_REDIS_SENTINELS", "host:port"),
        ({"QUEUE_GATE_REDIS_SENTINELS": "s1:99999", "QUEUE_GATE_REDIS_MASTER": "gate"},
         "QUEUE_GATE_REDIS_SENTINELS", "host:port"),
        ({"QUEUE_GATE_REDIS_SENTINELS": "s1:1", "QUEUE_GATE_REDIS_MASTER": "gate",
          "QUEUE_GATE_REDIS_CLUSTER": "1"}, "QUEUE_GATE_REDIS_CLUSTER", "exclude each other"),
        ({"QUEUE_GATE_REDIS_CLUSTER": "maybe"}, "QUEUE_GATE_REDIS_CLUSTER", "true/false"),
        ({"QUEUE_GATE_REQUIRE_DURABLE_REDIS": "2"}, "QUEUE_GATE_REQUIRE_DURABLE_REDIS",
         "true/false"),
    ],
)
def test_a_settings_error_names_the_variable(env: dict[str, str], variable: str,
                                             what: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "t", **env})
    assert variable in str(refused.value)
    assert what in str(refused.value)


def test_three_ways_to_reach_redis() -> None:
    base = {"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "t"}
    single = Settings.from_env(base)
    assert (single.redis_sentinels, single.redis_master, single.redis_cluster,
            single.require_durable_redis) == ((), "", False, False)
    sentinel = Settings.from_env({**base, "QUEUE_GATE_REDIS_MASTER": "gate",
                                  "QUEUE_GATE_REDIS_SENTINELS": "s1:26379, [::1]:26380,",
                                  "QUEUE_GATE_REQUIRE_DURABLE_REDIS": "yes"})
    assert sentinel.redis_sentinels == ("s1:26379", "[::1]:26380")
    assert sentinel.sentinel_addresses == (("s1", 26379), ("::1", 26380))
    assert (sentinel.redis_master, sentinel.require_durable_redis) == ("gate", True)
    assert Settings.from_env({**base, "QUEUE_GATE_REDIS_CLUSTER": "on"}).redis_cluster


def test_empty_means_default_and_flags_read_alike() -> None:
    """The meaning both services share: an empty variable takes the default."""
    base = {"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "t"}
    empty = Settings.from_env({**base, "QUEUE_GATE_RATE_PER_MINUTE": "", "REDIS_URL": "",
                               "QUEUE_GATE_COOKIE_SECURE": "", "QUEUE_GATE_ROOM": " "})
    assert (empty.initial_rate_per_minute, empty.redis_url, empty.cookie_secure,
            empty.room) == (60, "redis://127.0.0.1:6379/0", True, "default")
    for word in ("0", "false", "No", "OFF"):
        assert not Settings.from_env({**base, "QUEUE_GATE_COOKIE_SECURE": word}).cookie_secure
