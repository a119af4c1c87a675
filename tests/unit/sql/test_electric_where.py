"""The test oracle refuses what the gateway must never forward, so tests judged by it can fail."""

from __future__ import annotations

import pytest

from tests.unit.sql.electric_where import electric_where_problem, is_electric_where


@pytest.mark.parametrize(
    "text",
    [
        "status = 'open'",
        "((tenant_id = $1) AND (assigned_to = $2)) AND (status = $3)",
        "(a <> 1) OR ((b IS NOT NULL) AND (c NOT IN (1, 2)))",
        "(x NOT BETWEEN -1 AND 2) AND (s NOT ILIKE 'a%')"
        " AND (d::timestamptz > '2024-01-01 00:00:00Z')",
        "(-1)::int8 < x",
        "(done = false) OR (true)",
    ],
)
def test_forwarded_forms_pass(text: str) -> None:
    assert electric_where_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("NOT status = 'done'", "NOT"),
        ("NOT (status = 'done')", "NOT"),
        ("CAST(x AS int4) = 1", "CAST"),
        ("x = $1::text", "a cast on a parameter"),
        ("x::numeric = 1", "cast to numeric"),
        ("d::timestamptz > '2024-01-01'", "a date alone is refused"),
        ("a = 1 AND b = 2", "AND whose operands"),
        ("(a = 1) OR b = 2", "OR whose operands"),
        ("(a = 1) AND (b) = (2)", "parenthesis around a value"),
        ("x IN (SELECT 1)", "sub-select"),
        ("x = ANY($1)", "ANY"),
        ("lower(x) = 'a'", "a function call"),
        ("x = 1 -- c", "SQL_COMMENT"),
        ("x = (1", "does not parse"),
    ],
)
def test_forms_electric_may_refuse_are_caught(text: str, problem: str) -> None:
    found = electric_where_problem(text)
    assert found is not None
    assert problem in found, found
    assert not is_electric_where(text)
