"""Rule where templates: placeholders found by PostgreSQL's lexer, numbered once each."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from gateway.sql.expressions import ExpressionError
from gateway.sql.placeholders import compile_where
from tests.unit.sql.electric_where import electric_where_problem
from tests.unit.sql.strategies import conditions


def test_each_distinct_placeholder_gets_one_parameter_in_order_of_appearance() -> None:
    compiled = compile_where("a = :tenant AND b = :user AND c = :tenant AND d = :claims.org")
    assert compiled.sql == "(a = $1) AND (b = $2) AND (c = $1) AND (d = $3)"
    assert compiled.bindings == ("tenant", "user", "claims.org")
    assert compiled.claims == ("org",)


def test_placeholders_inside_literals_and_quoted_identifiers_are_text() -> None:
    compiled = compile_where("\"x:user\" = ':tenant' AND t = :tenant")
    assert compiled.bindings == ("tenant",)
    assert "':tenant'" in compiled.sql
    assert '"x:user"' in compiled.sql


def test_typecast_is_not_a_placeholder() -> None:
    compiled = compile_where("t::text = :tenant")
    assert compiled.sql == "t::text = $1"
    assert compiled.bindings == ("tenant",)


def test_comments_in_rule_where_do_not_survive_into_the_forwarded_sql() -> None:
    compiled = compile_where("tenant_id = :tenant -- scope by tenant")
    assert compiled.sql == "tenant_id = $1"


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("tenant_id = :tenat", "unknown placeholder :tenat"),
        ("tenant_id = $1", "positional parameters"),
        ("org = :claims", ":claims must be followed by .NAME"),
        ("tenant_id = :tenant)", "syntax error"),
        ("tenant_id = :tenant; DROP TABLE x", "several statements"),
        ("tenant_id = :tenant AND lower(x) = 'a'", "function call"),
    ],
)
def test_bad_rule_where_is_a_load_error(where: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_where(where)
    assert fragment in caught.value.message


def test_a_problem_points_at_the_rule_text_not_the_numbered_sql() -> None:
    text = "tenant_id = :tenant AND owner = :user AND lower(x) = 'a'"
    with pytest.raises(ExpressionError) as caught:
        compile_where(text)
    assert caught.value.position == text.index("lower")


def test_negations_in_a_rule_where_are_pushed_down_for_electric() -> None:
    assert compile_where("tenant_id = :tenant AND NOT archived").sql == (
        "(tenant_id = $1) AND (archived = false)"
    )


@settings(max_examples=300, deadline=None)
@given(condition=conditions())
def test_every_compiled_rule_where_is_in_electrics_subset_and_form(condition: str) -> None:
    compiled = compile_where(f"tenant_id = :tenant AND ({condition}) AND owner = :user")
    assert compiled.scoped
    assert electric_where_problem(compiled.sql) is None, compiled.sql
