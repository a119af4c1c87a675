"""NOTs pushed down: no NOT reaches Electric, and three-valued logic is kept (rows: test_emit)."""

from __future__ import annotations

import pytest

from gateway.sql.emit import emit_where
from gateway.sql.expressions import parse_expression
from gateway.sql.negation import push_negations


@pytest.mark.parametrize(
    ("where", "pushed"),
    [
        ("NOT (a = 1)", "a <> 1"),
        ("NOT (a <> 1)", "a = 1"),
        ("NOT (a < 1) AND NOT (b >= 2)", "(a >= 1) AND (b < 2)"),
        ("NOT (a > 1) AND NOT (b <= 2)", "(a <= 1) AND (b > 2)"),
        ("NOT (a IN (1, 2))", "a NOT IN (1, 2)"),
        ("NOT (a NOT IN (1))", "a IN (1)"),
        ("NOT (s LIKE 'x%') AND NOT (s NOT ILIKE 'y')", "(s NOT LIKE 'x%') AND (s ILIKE 'y')"),
        ("NOT (a BETWEEN 1 AND 2)", "a NOT BETWEEN 1 AND 2"),
        ("NOT (a NOT BETWEEN 1 AND 2)", "a BETWEEN 1 AND 2"),
        ("NOT (a IS NULL) AND NOT (b IS NOT NULL)", "(a IS NOT NULL) AND (b IS NULL)"),
        ("NOT (a = 1 AND (b = 2 OR NOT c))", "(a <> 1) OR ((b <> 2) AND (c))"),
        ("NOT NOT NOT (a = 1)", "a <> 1"),
        ("NOT true OR NOT false", "(false) OR (true)"),
        ("NOT done AND NOT (flag::bool)", "(done = false) AND (flag::bool = false)"),
        ("a = 1 AND b = 2", "(a = 1) AND (b = 2)"),
    ],
)
def test_each_not_is_replaced_by_its_three_valued_equivalent(where: str, pushed: str) -> None:
    assert emit_where(push_negations(parse_expression(where))) == pushed


def test_pushing_negations_leaves_the_input_tree_unchanged() -> None:
    node = parse_expression("NOT (a = 1 OR b IS NULL)")
    push_negations(node)
    assert node == parse_expression("NOT (a = 1 OR b IS NULL)")
