"""One boolean expression in a WHERE position, parsed by PostgreSQL's parser."""

from __future__ import annotations

import pytest

from gateway.sql.expressions import ExpressionError, deparse_expression, parse_expression


def test_equal_wheres_spelled_differently_deparse_to_one_text() -> None:
    first = deparse_expression(parse_expression("a=1  AND (b = 'x')"))
    assert first == deparse_expression(parse_expression("(a = 1) AND b = 'x' -- same"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a = 1; SELECT 1", "several statements"),
        ("a = 1 ORDER BY a", "only a boolean expression"),
        ("a = 1 UNION SELECT 1", "not a boolean expression"),
        ("a = (1", "syntax error"),
    ],
)
def test_anything_but_one_expression_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=fragment):
        parse_expression(text)


def test_a_syntax_error_points_into_the_expression_text() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression("a = = 1")
    assert caught.value.position == 4


@pytest.mark.parametrize("text", ["NOT " * 2000 + "true", "(a = 1 OR " * 700 + "true" + ")" * 700])
def test_a_where_nested_past_the_depth_limit_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ExpressionError, match="nests more than 100 levels"):
        parse_expression(text)


def test_a_where_nested_within_the_limit_parses() -> None:
    assert parse_expression("NOT " * 90 + "true") is not None
