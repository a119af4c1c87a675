"""Settings: defaults, flag overrides, and every problem reported at once."""

from __future__ import annotations

import pytest

from gateway.settings import SettingsError, load_settings


def test_defaults_match_the_spec() -> None:
    settings = load_settings({})
    assert settings.electric_url == "http://localhost:3000"
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.rules_path == "shape_rules.yaml"
    assert (settings.jwt_leeway, settings.jwt_max_ttl) == (30, 86400)
    assert settings.fail_mode == "closed"
    assert settings.log_format == "json"
    assert not settings.has_key_source


def test_environment_is_read_and_flags_override_it() -> None:
    env = {
        "ELECTRIC_URL": "http://electric:3000/",
        "GATEWAY_PORT": "9000",
        "JWT_SECRET": "x" * 32,
        "JWT_ALGORITHMS": "HS256, RS256",
        "GATEWAY_CORS_ORIGINS": "https://app.example.com/, http://localhost:5173",
    }
    settings = load_settings(env, port=9100, electric_url=None)
    assert settings.electric_url == "http://electric:3000"
    assert settings.port == 9100
    assert settings.jwt_algorithms == frozenset({"HS256", "RS256"})
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert settings.has_key_source


def test_every_problem_is_reported_together_naming_the_variable() -> None:
    env = {
        "GATEWAY_PORT": "eighty",
        "JWT_LEEWAY": "-1",
        "JWT_ALGORITHMS": "none,HS256",
        "ELECTRIC_URL": "localhost:3000",
        "GATEWAY_FAIL_MODE": "maybe",
        "LOG_FORMAT": "xml",
        "REDIS_URL": "localhost:6379",
        "GATEWAY_CORS_ORIGINS": "app.example.com",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    problems = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 8
    for variable in env:
        assert variable in problems
    assert "'none' never is" in problems


def test_redis_problems_name_the_form_expected_without_repeating_the_password() -> None:
    env = {"REDIS_URL": "redis+sentinel://app:hunter2-secret@s1:26379,s2:26379",
           "GATEWAY_REDIS_PREFIX": "team{a}", "GATEWAY_REVOCATION_WAIT_MS": "60000"}  # fmt: skip
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    problems = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 3
    assert "REDIS_URL: name the master Sentinel monitors" in problems
    assert "hunter2-secret" not in problems
    assert "GATEWAY_REDIS_PREFIX='team{a}'" in problems
    assert "GATEWAY_REVOCATION_WAIT_MS='60000'" in problems
    settings = load_settings({"REDIS_URL": "redis+cluster://n1:7000,n2:7000"})
    assert settings.redis_url is not None
    assert "n1:7000" not in repr(settings)  # a URL may hold a password: never in a repr


def test_an_admin_token_shorter_than_32_bytes_does_not_load_and_is_not_repeated() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_ADMIN_TOKEN": "change-me-admin-token"})
    (problem,) = caught.value.problems
    assert problem.startswith("GATEWAY_ADMIN_TOKEN must be at least 32 bytes (it is 21)")
    assert "change-me" not in problem
    assert load_settings({"GATEWAY_ADMIN_TOKEN": "a" * 32}).admin_token == "a" * 32


def test_any_origin_with_a_cookie_does_not_load_naming_both_settings() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_CORS_ORIGINS": "https://app.example.com, *",
                       "GATEWAY_AUTH_COOKIE": "sg_token"})  # fmt: skip
    (problem,) = caught.value.problems
    assert "GATEWAY_CORS_ORIGINS=*" in problem
    assert "GATEWAY_AUTH_COOKIE" in problem
    assert load_settings({"GATEWAY_CORS_ORIGINS": "*"}).cors_origins == ("*",)  # bearer only
    listed = load_settings({"GATEWAY_CORS_ORIGINS": "https://app.example.com",
                            "GATEWAY_AUTH_COOKIE": "sg_token"})  # fmt: skip
    assert listed.auth_cookie == "sg_token"


def test_the_audit_budget_must_hold_at_least_one_full_request() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_AUDIT_BYTES_PER_MINUTE": "1000"})
    assert "GATEWAY_AUDIT_BYTES_PER_MINUTE='1000': must be a whole number from 524288" in str(
        caught.value
    )
    assert load_settings({}).audit_bytes_per_minute == 1024 * 1024


def test_the_local_key_settings_are_read_and_a_short_secret_is_refused() -> None:
    env = {
        "GATEWAY_LOCAL_KEY_SECRET": "k" * 32,
        "GATEWAY_LOCAL_KEY_EPOCH": "3",
        "GATEWAY_LOCAL_KEY_LEASE": "3600",
    }
    settings = load_settings(env)
    assert (settings.local_key_secret, settings.local_key_epoch, settings.local_key_lease) == (
        "k" * 32, 3, 3600,
    )  # fmt: skip
    assert "k" * 32 not in repr(settings)
    assert load_settings({}).local_key_secret is None
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_LOCAL_KEY_SECRET": "short", "GATEWAY_LOCAL_KEY_LEASE": "5"})
    problems = "\n".join(caught.value.problems)
    assert "GATEWAY_LOCAL_KEY_SECRET must be at least 32 bytes" in problems
    assert "GATEWAY_LOCAL_KEY_LEASE='5': must be a whole number from 60" in problems


def test_collapsing_is_on_by_default_off_when_asked_and_anything_else_does_not_load() -> None:
    assert load_settings({}).collapse
    assert load_settings({"GATEWAY_COLLAPSE": "on"}).collapse
    assert not load_settings({"GATEWAY_COLLAPSE": "OFF"}).collapse
    with pytest.raises(SettingsError) as caught:
        load_settings({"GATEWAY_COLLAPSE": "false"})
    assert caught.value.problems == (
        "GATEWAY_COLLAPSE='false': must be on (identical upstream requests in flight share one) "
        "or off (one upstream request per client)",
    )
