"""The where subset: Electric's documented examples pass; everything else is named and refused."""

from __future__ import annotations

import pytest

from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.subset import check_subset


def refusal(where: str, columns: frozenset[str] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        check_subset(parse_expression(where), columns)
    return caught.value


@pytest.mark.parametrize(
    "where",
    [  # skills/electric-shapes/references/where-clause.md, minus arrays and sub-selects
        "name = 'Alice'",
        "age > 21",
        "price < 9.99",
        "active = true",
        "id = '550e8400-e29b-41d4-a716-446655440000'",
        "created > '2024-01-01'",
        "updated_at > '2024-01-01T00:00:00Z'",
        "duration > '1 hour'",
        "amount >= 100.50",
        "status::text IN ('active', 'done')",
        "status != 'x' AND status <> 'y'",
        "status NOT IN ('deleted')",
        "name ILIKE '%john%' OR name LIKE 'J%'",
        "deleted_at IS NULL AND archived_at IS NOT NULL",
        "active = true AND age > 18",
        "age BETWEEN 18 AND 65",
        "org_id = $1 AND role = $2",
        "NOT (active)",
        "created_at::date = '2024-01-01'::date",
        "x = NULL",
        # Not in the reference, but in 1.0.10's parser and 1.7's, and seen accepted by 1.7.12.
        "active IS TRUE OR active IS NOT FALSE",
        "(age > 1) IS NOT TRUE",
        "x IS DISTINCT FROM 1 AND y IS NOT DISTINCT FROM $1",
    ],
)
def test_electrics_documented_where_examples_are_accepted(where: str) -> None:
    check_subset(parse_expression(where))


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ("tags && ARRAY['urgent']", "operator &&"),
        ("id IN (SELECT user_id FROM memberships WHERE org_id = $1)", "sub-select"),
        ("EXISTS (SELECT 1)", "sub-select"),
        ("status = (SELECT 'x')", "sub-select"),
        ("start_time > now()", "function call"),
        ("lower(name) = 'a'", "function call"),
        ("status = ANY('{a,b}')", "ANY (arrays are not supported)"),
        ("status = ALL($1)", "ALL (arrays are not supported)"),
        ("x = ARRAY[1]", "ARRAY[...]"),
        ("status = $1::text", "cast on a parameter"),
        ("status::text::int4 = 1", "only a column or a literal may be cast"),
        ("amount::numeric > 1", "cast to numeric is not supported"),
        ("at::timetz > '10:00'", "cast to timetz is not supported"),
        ("x::pg_catalog.regclass IS NULL", "cast to regclass"),
        ("x::public.evil IS NULL", "cast to public.evil"),
        ("name::varchar(3) = 'abc'", "modifiers"),
        ("x::text[] IS NULL", "array bounds"),
        ("x BETWEEN SYMMETRIC 1 AND 2", "BETWEEN SYMMETRIC"),
        ("x SIMILAR TO 'a%'", "SIMILAR TO"),
        ("x OPERATOR(public.=) 1", "OPERATOR(...)"),
        ("x ~ 'a'", "operator ~"),
        ("x + 1 = 2", "arithmetic"),
        ("-x > 1", "arithmetic"),
        ("(a = 1) = true", "nested conditions"),
        ("$1", "a bare value is not a condition"),
        ("'yes'", "a bare value is not a condition"),
        ("t.x = 1", "plain column names"),
        ("x = B'101'", "bit-string"),
        ("x = current_user", "current_*"),
        ("ROW(a, b) = ROW(1, 2)", "row constructor"),
        ("CASE WHEN a THEN true END", "CASE"),
        ("coalesce(a, b)", "COALESCE"),
        ("greatest(a, b) = 1", "GREATEST/LEAST"),
        ("x COLLATE \"C\" = 'a'", "COLLATE"),
        ("x[1] = 1", "subscript"),
        ("x LIKE 'a' ESCAPE '!'", "function call"),
    ],
)
def test_constructs_outside_the_subset_are_refused_by_name(where: str, named: str) -> None:
    assert named in refusal(where).message


def test_columns_outside_the_list_are_refused_with_the_accepted_ones() -> None:
    error = refusal("status = 'a' AND salary > 1", frozenset({"status", "project_id"}))
    assert error.message == "column 'salary' may not be used; columns allowed: project_id, status"


def test_a_refusal_points_at_the_construct_in_the_text() -> None:
    assert refusal("status = 'a' AND lower(x) = 'b'").position == 17
