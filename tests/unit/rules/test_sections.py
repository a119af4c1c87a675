"""The rules file's sections other than shapes, each read on its own: `${VAR}` expanded in
values (never structure), durations, identity, upstreams, routing pins and limit plans that
inherit the default."""

from __future__ import annotations

import re
import textwrap

import pytest
import yaml

from gateway.rules.model import IdentityMap, LimitPlan, Upstream
from gateway.rules.nodes import compose_document
from gateway.rules.sections import (
    MAX_DURATION,
    RulesReader,
    read_identity,
    read_limits,
    read_routing,
    read_upstreams,
)

DEFAULT = Upstream("default", "http://electric:3000", "secret")


def node(text: str) -> yaml.Node:
    return compose_document(textwrap.dedent(text), "r.yaml")


def reader(**env: str) -> RulesReader:
    return RulesReader("r.yaml", env)


def messages(read: RulesReader) -> list[str]:
    return [str(p) for p in read.problems]


def test_variables_are_expanded_in_a_value_and_a_missing_one_is_reported() -> None:
    read = reader(HOST="eu", PORT="3000")
    assert read.string(node("'http://${HOST}:${PORT}/x'\n"), "k") == "http://eu:3000/x"
    assert read.string(node("'${NOPE}-a'\n"), "k") == "-a"
    assert messages(read) == ["r.yaml:1: k: environment variable NOPE is not set"]


def test_a_variable_holding_yaml_stays_a_string() -> None:
    assert reader(V="{a: [1]}").string(node("'${V}'\n"), "k") == "{a: [1]}"


def test_a_string_must_be_non_empty_and_match_its_pattern_after_expansion() -> None:
    read = reader(NAME="Bad Name")
    pattern = re.compile(r"[a-z]+")
    assert read.string(node("'${NAME}'\n"), "k", pattern=pattern) == "Bad Name"
    assert read.string(node("''\n"), "k") == ""
    assert read.string(node("3\n"), "k") == ""
    assert messages(read) == [
        "r.yaml:1: k: 'Bad Name' must match [a-z]+",
        "r.yaml:1: k: must be a non-empty string",
        "r.yaml:1: k: must be a non-empty string",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("366d", MAX_DURATION)],
)
def test_a_duration_is_a_whole_number_and_a_unit(text: str, seconds: int) -> None:
    read = reader()
    assert read.duration(node(f"{text}\n"), "ttl") == seconds
    assert read.problems == []


@pytest.mark.parametrize("text", ["367d", "0s", "1.5h", "10", "10w", "'05m'", "1000000s"])
def test_a_duration_that_is_not_one_or_longer_than_a_year_is_refused(text: str) -> None:
    read = reader()
    assert read.duration(node(f"{text}\n"), "ttl") is None
    assert [p.message.split(" is not")[1] for p in read.problems] == [
        " a duration like 30m, 24h or 7d (at most 366d)"
    ]


def test_a_list_of_strings_reports_a_repeat_and_keeps_one() -> None:
    read = reader()
    assert read.strings(node("[a, b, a]\n"), "roles") == ["a", "b"]
    assert messages(read) == ["r.yaml:1: roles: 'a' is listed twice"]
    assert reader().strings(node("a\n"), "roles") == []
    assert reader().strings(node("[a, '']\n"), "roles") == ["a"]


def test_identity_names_claims_and_keeps_defaults_for_what_it_does_not_name() -> None:
    read = reader(USER_CLAIM="uid")
    identity = read_identity(read, node("{user: '${USER_CLAIM}', plan: tier, role: ''}\n"))
    assert identity == IdentityMap(user="uid", tenant="tid", role="role", plan="tier")
    assert messages(read) == ["r.yaml:1: identity.role: must be a non-empty string"]


def test_upstreams_add_to_the_default_trimmed_and_without_an_empty_secret() -> None:
    read = reader(US_SECRET="")
    upstreams = read_upstreams(
        read,
        node("""\
            eu: {url: 'https://eu.example/electric/', secret: x}
            us: {url: 'http://us', secret: '${US_SECRET}'}
            """),
        DEFAULT,
    )
    assert upstreams == {
        "default": DEFAULT,
        "eu": Upstream("eu", "https://eu.example/electric", "x"),
        "us": Upstream("us", "http://us", None),
    }
    assert read.problems == []


def test_an_upstream_without_an_http_url_is_refused() -> None:
    read = reader()
    read_upstreams(
        read, node("eu: {secret: x}\nus: {url: 'ftp://us'}\nap: {url: 'http://a b'}\n"), DEFAULT
    )
    assert messages(read) == [
        "r.yaml:1: upstreams.eu: needs a url",
        "r.yaml:2: upstreams.us.url: 'ftp://us' is not an http(s) URL",
        "r.yaml:3: upstreams.ap.url: 'http://a b' is not an http(s) URL",
    ]


def test_routing_pins_tenants_to_defined_upstreams_only() -> None:
    read = reader()
    routing = read_routing(
        read,
        node("claim: region\ntenants: {acme: eu, globex: mars}\n"),
        {"default": DEFAULT, "eu": DEFAULT},
    )
    assert routing.claim == "region"
    assert dict(routing.tenants) == {"acme": "eu", "globex": "mars"}
    assert messages(read) == [
        "r.yaml:2: routing.tenants.globex: no upstream named 'mars'; defined: default, eu"
    ]


def test_a_plan_inherits_what_it_does_not_set_from_the_default_not_the_builtin() -> None:
    read = reader()
    limits = read_limits(
        read,
        node("""\
            default: {requests_per_minute: 100}
            plans:
              gold: {live_connections_per_user: 50}
            """),
    )
    assert limits.default == LimitPlan(requests_per_minute=100)
    assert limits.plans["gold"] == LimitPlan(requests_per_minute=100, live_connections_per_user=50)
    assert read.problems == []


def test_a_limit_must_be_a_known_key_and_a_positive_whole_number() -> None:
    read = reader()
    read_limits(read, node("default: {requests_per_minute: 0, burst: 3}\n"))
    assert messages(read) == [
        "r.yaml:1: limits.default.burst: unknown key; accepted: "
        "requests_per_minute, tenant_requests_per_minute, live_connections_per_user",
        "r.yaml:1: limits.default.requests_per_minute: must be a whole number of at least 1",
    ]
