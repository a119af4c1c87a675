"""The one decisions cache: a kept decision is always the one a miss would make (its key holds
everything it depends on), refusals and expired tokens are never served, the bytes are bounded
and reported."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.auth.keys import KeyRing, StaticKeys, hmac_key
from gateway.auth.tokens import TokenPolicy, TokenVerifier, token_digest
from gateway.cache import ENTRY_OVERHEAD
from gateway.decisions import Caller, Decisions, definition_key
from gateway.errors import Code, Refusal
from gateway.rules.model import Rules
from gateway.shape import plan as planner
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import UpstreamRequest, plan_upstream_request
from gateway.web.keys import DECISIONS
from tests.factories import RULES_YAML, SECRET, make_identity, make_rules, make_token
from tests.gateway import GatewayFactory

POLICY = TokenPolicy()


class CountingVerifier(TokenVerifier):
    """The real verifier, counting the verifications it makes (what a kept claim saves)."""

    def __init__(self) -> None:
        super().__init__(KeyRing(StaticKeys((hmac_key(SECRET),))), POLICY)
        self.calls = 0

    async def verify_key(self, token: str, now: float) -> Any:
        self.calls += 1
        return await super().verify_key(token, now)


def decisions(**bounds: int) -> Decisions:
    return Decisions(CountingVerifier(), **bounds)


def calls(kept: Decisions) -> int:
    assert isinstance(kept.verifier, CountingVerifier)
    return kept.verifier.calls


def caller(user: str = "alice", tenant_header: str | None = None) -> Caller:
    return Caller(token_digest(f"token of {user}"), tenant_header)


def planned(
    kept: Decisions,
    pairs: list[tuple[str, str]],
    rules: Rules,
    who: Caller | None = None,
    **identity: Any,
) -> UpstreamRequest:
    return kept.plan(parse_shape_query(pairs), who or caller(), make_identity(**identity), rules)


# Keys: different inputs never share an entry.

POSITION_FREE = [
    [("table", "tasks"), ("offset", "-1")],
    [("table", "drafts"), ("offset", "-1")],
    [("table", "tasks"), ("offset", "-1"), ("columns", "id")],
    [("table", "tasks"), ("offset", "-1"), ("where", "status = $1"), ("params[1]", "a")],
    [("table", "tasks"), ("offset", "-1"), ("where", "status = $1"), ("params[1]", "b")],
    [("table", "tasks"), ("offset", "-1"), ("replica", "full")],
    [("table", "tasks"), ("offset", "-1"), ("log", "changes_only")],
    [("table", "tasks"), ("offset", "-1"), ("subset__limit", "10")],
    [("table", "tasks"), ("offset", "-1"), ("subset__offset", "10")],
    [("table", "tasks"), ("offset", "-1"), ("subset__order_by", "id")],
    [("table", "tasks"), ("offset", "-1"), ("subset__where", "status = 'a'")],
]


def test_the_definition_key_differs_when_any_part_of_the_definition_differs() -> None:
    keys = {definition_key(parse_shape_query(pairs)) for pairs in POSITION_FREE}
    assert len(keys) == len(POSITION_FREE)


def test_the_definition_key_leaves_out_only_the_clients_position() -> None:
    base = [("table", "tasks"), ("offset", "-1")]
    moved = [("table", "tasks"), ("offset", "5_0"), ("handle", "1-2"), ("live", "true"),
             ("cursor", "7"), ("live_sse", "true"), ("cache-buster", "x")]  # fmt: skip
    assert definition_key(parse_shape_query(base)) == definition_key(parse_shape_query(moved))


def test_a_plan_is_made_again_when_any_input_of_its_key_differs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[Any, ...]] = []
    real = planner.plan_definition

    def counted(*args: Any) -> Any:
        made.append(args)
        return real(*args)

    monkeypatch.setattr("gateway.decisions.plan_definition", counted)
    kept, rules = decisions(), make_rules()
    other_rules = make_rules(RULES_YAML + "\n# the same rules, another digest\n")
    assert other_rules.digest != rules.digest
    query = [("table", "drafts"), ("offset", "-1")]
    planned(kept, query, rules)
    planned(kept, query, rules)
    assert len(made) == 1
    planned(kept, query, rules, caller("bob"))  # another token
    planned(kept, query, rules, caller("alice", "acme"))  # a tenant header
    planned(kept, query, other_rules)  # reloaded rules
    planned(kept, [*query, ("columns", "id")], rules)  # another definition
    assert len(made) == 5
    planned(kept, [("table", "drafts"), ("offset", "7_0"), ("handle", "h")], rules)
    assert len(made) == 5  # only the position moved


def test_a_kept_plan_is_never_another_callers() -> None:
    kept, rules = decisions(), make_rules()
    query = [("table", "drafts"), ("offset", "-1")]
    first = planned(kept, query, rules, caller("alice"), user="alice")
    second = planned(kept, query, rules, caller("bob"), user="bob")
    other_tenant = planned(
        kept, query, rules, caller("alice", "globex"), user="alice", tenant="globex"
    )
    assert (first.params, second.params, other_tenant.params) == (
        ("acme", "alice"), ("acme", "bob"), ("globex", "alice"),
    )  # fmt: skip
    org = [("table", "org_notes"), ("offset", "-1")]
    assert (
        planned(kept, org, rules, caller("a"), role="admin", claims={"org": "a"}).params[1] == "a"
    )
    assert (
        planned(kept, org, rules, caller("b"), role="admin", claims={"org": "b"}).params[1] == "b"
    )


def test_a_kept_plan_follows_the_clients_position_and_refusals_are_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    real = planner.plan_definition

    def counted(*args: Any) -> Any:
        made.append("definition")
        return real(*args)

    monkeypatch.setattr("gateway.decisions.plan_definition", counted)
    kept, rules = decisions(), make_rules()
    base = [("table", "tasks"), ("handle", "1-2"), ("live", "true")]
    one = planned(kept, [*base, ("offset", "1_0")], rules)
    two = planned(kept, [*base, ("offset", "2_0"), ("cursor", "7")], rules)
    assert made == ["definition"]  # the second poll reused the first's definition
    assert ("offset", "1_0") in one.query
    assert ("offset", "2_0") in two.query
    assert ("cursor", "7") in two.query
    assert one.where == two.where
    bad = [("table", "tasks"), ("offset", "-1"), ("columns", "id,salary")]
    for _ in range(2):
        with pytest.raises(Refusal) as refused:
            planned(kept, bad, rules)
        assert refused.value.code is Code.COLUMN_NOT_ALLOWED
    assert made == ["definition"] * 3


def test_a_kept_plan_is_the_plan_a_miss_makes_encoding_included() -> None:
    kept, rules = decisions(), make_rules()
    pairs = [("table", "tasks"), ("offset", "-1"), ("where", "status = $1 OR status = $2"),
             ("params[1]", "a&b=c"), ("params[2]", "é ü"), ("handle", "1-2")]  # fmt: skip
    fresh = plan_upstream_request(parse_shape_query(pairs), make_identity(), rules)
    for _ in range(2):
        assert planned(kept, pairs, rules) == fresh
    assert fresh.target == "&".join(
        f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in fresh.query
    )
    assert "=a%26b%3Dc&" in fresh.target


def test_a_rules_reload_never_serves_a_plan_made_under_the_old_rules() -> None:
    kept = decisions()
    before = make_rules()
    after = make_rules(
        """\
        version: 1
        roles: [member]
        shapes:
          tasks:
            table: public.tasks
            where: "tenant_id = :tenant AND owner_id = :user"
            allow: [member]
        """
    )
    assert before.digest != after.digest
    query = [("table", "tasks"), ("offset", "-1")]
    old = planned(kept, query, before)
    new = planned(kept, query, after)
    assert old.where != new.where
    assert new.where is not None
    assert "owner_id" in new.where
    assert planned(kept, query, before) == old  # and back: each under its own digest


def test_rules_without_a_digest_are_never_kept() -> None:
    kept, rules = decisions(), make_rules()
    unnamed = Rules(rules.identity, rules.roles, rules.shapes, rules.upstreams)
    assert unnamed.digest == ""
    planned(kept, [("table", "tasks"), ("offset", "-1")], unnamed)
    assert len(kept.cache) == 0


async def test_an_identity_is_kept_per_tenant_header_and_identity_mapping() -> None:
    kept, rules = decisions(), make_rules()
    token = make_token(tenants={"globex": "admin"})
    digest, claims = await kept.claims(token)
    own = kept.identity(Caller(digest, None), claims, rules.identity)
    chosen = kept.identity(Caller(digest, "globex"), claims, rules.identity)
    assert (own.tenant, chosen.tenant) == ("acme", "globex")
    other_mapping = type(rules.identity)(user="tid")
    assert kept.identity(Caller(digest, None), claims, other_mapping).user == "acme"
    with pytest.raises(Refusal) as refused:
        kept.identity(Caller(digest, "initech"), claims, rules.identity)
    assert refused.value.code is Code.TENANT_NOT_MEMBER
    assert ("identity", digest, "initech", rules.identity) not in kept.cache._entries


# Tokens: kept until exp, never past it.


async def test_a_verified_token_is_kept_and_not_verified_again() -> None:
    now = time.time()  # when the test runs (the suite may reach it late)
    kept = decisions()
    token = make_token(iat=int(now), exp=int(now) + 60)
    for at in (now, now + 30):
        digest, claims = await kept.claims(token, at)
        assert (digest, claims["sub"]) == (token_digest(token), "alice")
    assert calls(kept) == 1


async def test_a_token_past_its_exp_is_never_served_from_the_cache() -> None:
    now = time.time()  # when the test runs (the suite may reach it late)
    kept = decisions()
    token = make_token(iat=int(now), exp=int(now) + 60)
    await kept.claims(token, now)
    for _ in range(2):
        with pytest.raises(Refusal) as refused:
            await kept.claims(token, now + 60 + POLICY.leeway + 1)
        assert refused.value.code is Code.TOKEN_EXPIRED
    assert calls(kept) == 2  # the expired entry was dropped; the token itself was refused


async def test_a_refused_token_is_never_kept() -> None:
    now = time.time()  # when the test runs (the suite may reach it late)
    kept = decisions()
    forged = make_token(key="another-secret-another-secret-0123456789")
    for _ in range(2):
        with pytest.raises(Refusal):
            await kept.claims(forged, now)
    assert calls(kept) == 2
    assert len(kept.cache) == 0


# One bound in bytes, one metric.


async def test_the_byte_bound_evicts_the_least_recently_used_decisions() -> None:
    now = time.time()  # when the test runs (the suite may reach it late)
    kept = decisions(max_bytes=16 * 1024)
    tokens = [make_token(sub=f"user{n}") for n in range(100)]
    for token in tokens:
        await kept.claims(token, now)
        assert kept.cache.bytes <= 16 * 1024
    assert 0 < len(kept.cache) < 100
    await kept.claims(tokens[-1], now)
    assert calls(kept) == 100  # the most recent is still kept
    await kept.claims(tokens[0], now)
    assert calls(kept) == 101  # the oldest went


async def test_the_entry_bound_holds_too() -> None:
    now = time.time()  # when the test runs (the suite may reach it late)
    kept = decisions(max_entries=3)
    for n in range(5):
        await kept.claims(make_token(sub=f"user{n}"), now)
    assert len(kept.cache) == 3


async def test_the_metric_reports_the_bytes_the_decisions_cache_holds(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    query = {"table": "tasks", "offset": "-1", "where": "status = $1", "params[1]": "open"}
    async with gateway.shape(query, token=make_token(role="admin")) as response:
        assert response.status == 502  # planned, then Electric is unreachable
    async with gateway.request("GET", "/metrics", token=None) as response:
        text = await response.text()
    sizes = {
        sample.labels["cache"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "shape_gateway_cache_bytes"
    }
    held = gateway.app[DECISIONS].cache
    assert len(held) == 4  # the token, the identity, the plan, the checked where
    # (other gateways' caches still alive in this test process are summed in too)
    assert sizes["decisions"] >= held.bytes > 4 * ENTRY_OVERHEAD
