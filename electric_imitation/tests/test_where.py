"""The imitation judges wheres as Electric's parser does (electric_imitation/where_check.py).

Everything the `@electric-sql/client` where-clause reference documents as supported is
accepted by both versions; what Electric refuses is refused with its message and location;
1.0.10's crashes are crashes. No database needed: this is the parse-tree walk alone.
"""

from __future__ import annotations

import pytest
from pglast import parse_sql

from electric_imitation.versions import server_version
from electric_imitation.where_check import (
    PREFIX,
    WhereCrashError,
    WhereRefusalError,
    check_where,
)

COLUMNS = {
    "id": "int4",
    "age": "int8",
    "name": "text",
    "status": "text",
    "code": "varchar",
    "active": "bool",
    "price": "float8",
    "amount": "numeric",
    "uid": "uuid",
    "created": "date",
    "updated_at": "timestamptz",
    "duration": "interval",
    "tags": "text[]",
    "mood": "enum mood",
    "meta": "jsonb",
}
OLD, NEW = server_version("1.0.10"), server_version("1.7")

# The documented subset (where-clause reference: types, operators, params), one line each.
DOCUMENTED = [
    "name = 'Alice'",
    "age > 21",
    "price < 9.99",
    "active = true",
    "uid = '550e8400-e29b-41d4-a716-446655440000'",
    "created > '2024-01-01'",
    "updated_at > '2024-01-01T00:00:00Z'",
    "duration = '1 hour'",  # the reference shows `>`: Electric's code has only = and <>
    "amount >= 100.50",
    "tags && ARRAY['urgent']",
    "mood::text IN ('active', 'done')",
    "status = 'active'",
    "status != 'x' AND status <> 'y'",
    "age >= 18 AND age <= 65 AND age < 99 AND age > 1",
    "status IN ('active', 'pending')",
    "status NOT IN ('deleted')",
    "name ILIKE '%john%' OR name LIKE 'J%'",
    "updated_at IS NULL OR name IS NOT NULL",
    "active = true AND age > 18",
    "age BETWEEN 18 AND 65",
    "name = ANY(tags) AND 'x' = ALL(tags)",
    "name = $1 AND age = $2",
]


@pytest.mark.parametrize("where", DOCUMENTED)
def test_every_documented_where_is_accepted_by_both_versions(where: str) -> None:
    params = {"1": "org-123", "2": "30"} if "$" in where else {}
    for server in (OLD, NEW):
        checked = check_where(where, params, COLUMNS, server)
        # What PostgreSQL runs is the same tree, rebuilt: nothing rides along.
        rebuilt = parse_sql(PREFIX + checked.sql)[0].stmt
        assert rebuilt == parse_sql(PREFIX + where)[0].stmt


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("nope = 1", "At location 0: unknown reference nope"),
        ("t.id = 1", "At location 0: unknown reference t.id"),
        ('"Id" = 1', 'At location 0: unknown reference "Id"'),
        ("id = 'x'", "At location 5: invalid syntax for type int4: x"),
        ("active = 'maybe'", "At location 9: invalid syntax for type bool: maybe"),
        ("id::int4 = 'x'::int4", 'At location 11: could not cast value "x" from text to int4'),
        ("active < true", "At location 7: Could not select an operator overload"),
        ("duration > '1 hour'", "At location 9: Could not select an operator overload"),
        ("meta = '{}'", "At location 5: Could not select an operator overload"),
        ("meta->>'k' = 'v'", 'At location 4: unknown binary operator "->>"'),
        ("name ~ 'x'", 'At location 5: unknown binary operator "~"'),
        ("now() > updated_at", "At location 0: unknown or unsupported function now/0"),
        ("random() > 0.5", "At location 0: unknown or unsupported function random/0"),
        ("count(*) > 1", "At location 0: aggregation is not supported in this context"),
        ("upper(id) = 'A'", "At location 0: Could not select a function overload for upper(int4)"),
        ("amount::numeric > 1", "At location 8: unsupported type numeric"),
        ("mood::mood = 'x'", "At location 6: unsupported type mood"),
        (
            "current_timestamp > updated_at",
            "At location 0: SQLValueFunction is not supported in this context",
        ),
        (
            "CASE WHEN active THEN true END",
            "At location 0: CaseExpr is not supported in this context",
        ),
        (
            "NULLIF(id, 1) = 2",
            'At location 0: expression "=" of :AEXPR_NULLIF is not currently supported',
        ),
        ("id AND active", "At location 0: reference id of type int4 is not castable to bool"),
        ("id IS TRUE", "At location 3: argument of IS TRUE must be bool, not int4"),
        ("id = $1", "At location 5: parameter $1 was not provided"),
        ("id = = 1", 'At location 21: syntax error at or near "="'),
        ("id = 1 AND", "At location 26: syntax error at end of input"),
        ("true; DELETE FROM t", 'unescaped ";" causing statement split'),
        ("true ORDER BY 1", "malformed query ending with SQL clauses"),
    ],
)
def test_what_electric_refuses_is_refused_with_its_words(where: str, message: str) -> None:
    for server in (OLD, NEW):
        with pytest.raises(WhereRefusalError) as refused:
            check_where(where, {}, COLUMNS, server)
        assert refused.value.message == message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"1": "a", "2": "b"}, "At location 0: parameter value for $2 was not used"),
        ({"1": "a", "x": "b"}, "At location 0: parameter value for $x was not used"),
    ],
)
def test_parameters_must_all_be_used(params: dict[str, str], message: str) -> None:
    with pytest.raises(WhereRefusalError) as refused:
        check_where("name = $1", params, COLUMNS, NEW)
    assert refused.value.message == message


def test_parameter_values_are_read_as_the_type_they_meet() -> None:
    with pytest.raises(WhereRefusalError) as refused:
        check_where("status = $1 AND id = $2", {"1": "ok", "2": "abc"}, COLUMNS, OLD)
    assert refused.value.message == "At location 21: invalid syntax for type int4: abc"


@pytest.mark.parametrize(
    "where",
    [
        "NOT active",
        "NOT (status = 'done')",
        "NOT status = 'done'",
        "id = 1 AND NOT (active OR status IS NULL)",
    ],
)
def test_1_0_10_crashes_on_every_boolean_not_and_1_7_accepts_it(where: str) -> None:
    with pytest.raises(WhereCrashError) as crashed:
        check_where(where, {}, COLUMNS, OLD)
    assert "to_binary_operators/1" in crashed.value.exception
    check_where(where, {}, COLUMNS, NEW)


def test_negations_without_a_boolean_not_are_fine_on_1_0_10() -> None:
    for where in (
        "status <> 'done'",
        "status NOT IN ('a')",
        "status IS NOT NULL",
        "active IS NOT TRUE",
        "name NOT LIKE 'x%'",
        "id NOT BETWEEN 1 AND 2",
        "(status = 'done') = false",
    ):
        check_where(where, {}, COLUMNS, OLD)


@pytest.mark.parametrize(
    ("where", "params"),
    [
        ("status = $1 AND id = CAST($2 AS integer)", {"1": "a", "2": "3"}),
        ("status = $1 AND id = $2::int4", {"1": "a", "2": "3"}),
        ("$1::int4 = id", {"1": "3"}),
        ("status = $1 AND $2 IS NULL", {"1": "a", "2": "3"}),
    ],
)
def test_1_0_10_crashes_on_a_parameter_it_never_typed(where: str, params: dict[str, str]) -> None:
    with pytest.raises(WhereCrashError) as crashed:
        check_where(where, params, COLUMNS, OLD)
    assert crashed.value.exception == "** (MatchError) no match of right hand side value: nil"
    check_where(where, params, COLUMNS, NEW)


def test_casts_on_columns_and_literals_are_fine_on_1_0_10() -> None:
    for where, params in (
        ("id::text = $1", {"1": "3"}),
        ("id = '3'::int4", {}),
        ("created::text LIKE $1", {"1": "2024%"}),
    ):
        check_where(where, params, COLUMNS, OLD)


@pytest.mark.parametrize(
    "where",
    [
        "id * 2 > 3",
        "COALESCE(status, 'x') = 'x'",
        "GREATEST(age, 1) > 2",
        "mood = 'happy'",
        "like(name, 'J%')",
        "id IN (SELECT id FROM other WHERE x = 1)",
    ],
)
def test_what_1_7_added_is_refused_by_1_0_10(where: str) -> None:
    check_where(where, {}, COLUMNS, NEW)
    with pytest.raises(WhereRefusalError):
        check_where(where, {}, COLUMNS, OLD)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("id = ANY (SELECT id FROM t)", "only `value IN (SELECT ...)` sublinks are supported"),
        ("EXISTS (SELECT 1 FROM t)", "only `value IN (SELECT ...)` sublinks are supported"),
        ("id IN (SELECT x + 1 FROM t)", "Expected a plain column reference"),
        ("id IN (SELECT x FROM t, u)", "Expected a single table reference"),
        ("id IN (SELECT x FROM t LIMIT 1)", "SELECT statement must not contain any clauses"),
    ],
)
def test_1_7_allows_only_plain_in_select_subqueries(where: str, message: str) -> None:
    with pytest.raises(WhereRefusalError) as refused:
        check_where(where, {}, COLUMNS, NEW)
    assert message in refused.value.message


def test_subqueries_can_be_refused_outright_as_in_a_subset() -> None:
    with pytest.raises(WhereRefusalError) as refused:
        check_where("id IN (SELECT id FROM t)", {}, COLUMNS, NEW, subqueries=False)
    assert refused.value.message == "At location 3: subqueries are not supported"


def test_what_follows_the_expression_never_reaches_postgres() -> None:
    checked = check_where("status = 'a' LIMIT 1 -- comment", {}, COLUMNS, NEW)
    assert checked.sql == "status = 'a'"


BAD_TIMESTAMPTZ = "invalid syntax for type timestamptz"
NO_CAST = "At location 0: unknown cast from type"


@pytest.mark.parametrize(
    ("where", "message"),
    # what real 1.0.10 and 1.7.12 answered 400 (electric_imitation/versions.py), in Electric's words
    [
        ("updated_at > '2024-03-01'", f"At location 13: {BAD_TIMESTAMPTZ}: 2024-03-01"),
        (
            "updated_at BETWEEN '2024-03-01' AND '2024-04-01T00:00:00Z'",
            f"At location 19: {BAD_TIMESTAMPTZ}: 2024-03-01",
        ),
        (
            "'2024-03-01'::timestamp < updated_at",
            'At location 0: could not cast value "2024-03-01" from text to timestamp',
        ),
        ("updated_at::date = created", f"{NO_CAST} timestamptz to type date"),
        ("updated_at::text = 'x'", f"{NO_CAST} timestamptz to type text"),
        ("code::int4 = 1", "At location 0: unknown cast from type varchar to type int4"),
        ("price::int4 = 1", "At location 0: unknown cast from type float8 to type int4"),
        ("5::int2 = id", "At location 0: unknown cast from type int4 to type int2"),
        ("updated_at > '2024-03-01 10:00'", f"At location 13: {BAD_TIMESTAMPTZ}: 2024-03-01 10:00"),
        ("active = 'yes'", "At location 9: invalid syntax for type bool: yes"),
        ("active = '1'", "At location 9: invalid syntax for type bool: 1"),
    ],
)  # fmt: skip
def test_literals_and_casts_electric_cannot_type_are_refused_by_both_versions(
    where: str, message: str
) -> None:
    for server in (OLD, NEW):
        with pytest.raises(WhereRefusalError) as refused:
            check_where(where, {}, COLUMNS, server)
        assert refused.value.message == message


def test_a_where_that_is_not_a_boolean_is_refused_since_1_1() -> None:
    with pytest.raises(WhereRefusalError) as refused:
        check_where("id", {}, COLUMNS, NEW)
    assert refused.value.message == "WHERE clause must return a boolean"
    check_where("id", {}, COLUMNS, OLD)  # 1.0.10 takes it; PostgreSQL fails the snapshot


@pytest.mark.parametrize(
    "where",
    [
        "active IS TRUE AND active IS NOT FALSE AND (id = 1) IS NOT TRUE",
        "id IS DISTINCT FROM 5 AND name IS NOT DISTINCT FROM $1",
        "updated_at > '2024-03-01T10:00:00+01:00' AND created = '2024-03-01'",
        "created < '2024-03-01 10:00:00'::timestamp AND id::text = '1' AND active::int4 = 1",
    ],
)
def test_both_versions_accept_is_true_distinct_from_and_full_timestamps(where: str) -> None:
    params = {"1": "x"} if "$1" in where else {}
    for server in (OLD, NEW):
        check_where(where, params, COLUMNS, server)
