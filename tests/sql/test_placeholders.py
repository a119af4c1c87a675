"""Rule where templates: placeholders found by PostgreSQL's lexer, numbered once each."""

from __future__ import annotations

import pytest

from gateway.sql.expressions import ExpressionError
from gateway.sql.placeholders import compile_where


def test_each_distinct_placeholder_gets_one_parameter_in_order_of_appearance() -> None:
    compiled = compile_where("a = :tenant AND b = :user AND c = :tenant AND d = :claims.org")
    assert compiled.sql == "a = $1 AND b = $2 AND c = $1 AND d = $3"
    assert compiled.bindings == ("tenant", "user", "claims.org")
    assert compiled.claims == ("org",)


def test_placeholders_inside_literals_and_quoted_identifiers_are_text() -> None:
    compiled = compile_where("\"x:user\" = ':tenant' AND t = :tenant")
    assert compiled.bindings == ("tenant",)
    assert "':tenant'" in compiled.sql
    assert '"x:user"' in compiled.sql


def test_typecast_is_not_a_placeholder() -> None:
    compiled = compile_where("t::text = :tenant")
    assert compiled.sql == "CAST(t AS text) = $1"


def test_comments_in_rule_where_do_not_survive_into_the_forwarded_sql() -> None:
    compiled = compile_where("tenant_id = :tenant -- scope by tenant")
    assert compiled.sql == "tenant_id = $1"


@pytest.mark.parametrize(
    ("where", "scoped"),
    [
        ("tenant_id = :tenant", True),
        ("owner = :user AND archived = false", True),
        ("tenant_id = :tenant OR public", False),
        ("NOT tenant_id = :tenant", False),
        ("tenant_id <> :tenant", False),
        ("tenant_id IN (:tenant)", True),
        ("project_id IN (SELECT id FROM projects WHERE tenant_id = :tenant)", True),
        ("role_name = :role", False),
        ("org = :claims.org", False),
        ("true", False),
    ],
)
def test_scoping_needs_an_equality_on_user_or_tenant_outside_or_and_not(
    where: str, scoped: bool
) -> None:
    assert compile_where(where).scoped is scoped


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("tenant_id = :tenat", "unknown placeholder :tenat"),
        ("tenant_id = $1", "positional parameters"),
        ("org = :claims", ":claims must be followed by .NAME"),
        ("tenant_id = :tenant)", "syntax error"),
        ("tenant_id = :tenant; DROP TABLE x", "several statements"),
    ],
)
def test_bad_rule_where_is_a_load_error(where: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_where(where)
    assert fragment in caught.value.message
