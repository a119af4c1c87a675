"""Unset `${VAR}` read as placeholders for test and diff, and are recorded."""

from __future__ import annotations

from gateway.rules.load import parse_rules
from gateway.rulesops.environment import PlaceholderEnv, placeholder
from tests.factories import DEFAULT_UPSTREAM

RULES = """\
version: 1
roles: [admin]
upstreams:
  eu: {url: "${EU_URL}", secret: "${EU_SECRET}"}
shapes:
  things: {table: public.things, public: true}
"""


def test_set_variables_keep_their_value_and_unset_ones_read_as_a_placeholder() -> None:
    env = PlaceholderEnv({"EU_SECRET": "s3cret"})
    rules = parse_rules(RULES, path="r.yaml", env=env, default_upstream=DEFAULT_UPSTREAM)
    assert rules.upstreams["eu"].url == placeholder("EU_URL")
    assert rules.upstreams["eu"].secret == "s3cret"
    assert env.missing == {"EU_URL"}


def test_the_placeholder_is_a_valid_url_naming_the_variable() -> None:
    assert placeholder("EU_URL") == "http://unset.invalid/${EU_URL}"


def test_iteration_shows_only_the_real_environment() -> None:
    env = PlaceholderEnv({"A": "1"})
    assert dict(env) == {"A": "1"}
    assert "ANYTHING" in env
