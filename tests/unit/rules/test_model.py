"""The rules' value types: which limit plan a token's plan name picks, and which tables are
filled per tenant."""

from __future__ import annotations

from gateway.rules.model import LimitPlan, Limits, ShapeRule, Upstream


def test_a_named_plan_gets_its_limits_and_an_unknown_or_absent_plan_the_default() -> None:
    gold = LimitPlan(requests_per_minute=6000)
    limits = Limits(default=LimitPlan(requests_per_minute=60), plans={"gold": gold})
    assert limits.plan_for("gold") is gold
    assert limits.plan_for("silver") is limits.default
    assert limits.plan_for(None) is limits.default
    assert limits.plan_for("") is limits.default


def test_a_table_naming_tenant_is_per_tenant_and_a_plain_one_is_not() -> None:
    assert ShapeRule("docs", "tenant_{tenant}.documents", grants={}).per_tenant_table
    assert not ShapeRule("tasks", "public.tasks", grants={}).per_tenant_table


def test_an_upstreams_secret_is_kept_out_of_its_repr() -> None:
    upstream = Upstream("eu", "http://eu:3000", secret="s3cret-value")
    assert "s3cret-value" not in repr(upstream)
    assert upstream.secret == "s3cret-value"
