"""Client where clauses: the allowed grammar passes, everything else is invalid_where."""

from __future__ import annotations

from typing import Any

import pytest
from pglast import parse_sql
from pglast.parser import parse_sql_json

from gateway.auth.keys import KeyRing, StaticKeys
from gateway.auth.tokens import TokenPolicy, TokenVerifier
from gateway.decisions import Decisions
from gateway.errors import Code, Refusal
from gateway.shape.client_where import (
    MAX_WHERE_LENGTH,
    MAX_WHERE_TOKENS,
    check_client_where,
    check_order_by,
)

ALLOWED = frozenset({"status", "project_id", "created_at"})


@pytest.mark.parametrize(
    ("where", "forwarded"),
    [
        ("status = 'open'", "status = 'open'"),
        ("status <> 'x' AND project_id IN (1, 2)", "(status <> 'x') AND (project_id IN (1, 2))"),
        ("NOT (status = 'a' OR status = 'b')", "(status <> 'a') AND (status <> 'b')"),
        ("NOT status = 'done'", "status <> 'done'"),
        ("project_id BETWEEN 1 AND 5", "project_id BETWEEN 1 AND 5"),
        ("status IS NOT NULL", "status IS NOT NULL"),
        ("status ILIKE 'op%'", "status ILIKE 'op%'"),
        ("status NOT LIKE '%x'", "status NOT LIKE '%x'"),
        (
            "created_at::timestamptz > '2024-01-01 00:00:00Z'",
            "created_at::timestamptz > '2024-01-01 00:00:00Z'",
        ),
        ("status IS DISTINCT FROM 'a'", "status IS DISTINCT FROM 'a'"),
        ("NOT (status IS NOT DISTINCT FROM $1)", "status IS DISTINCT FROM $1"),
        ("NOT (status = 'a') IS TRUE", "(status = 'a') IS NOT TRUE"),
        ("NOT ((status = 'a') IS FALSE)", "(status = 'a') IS NOT FALSE"),
        ("CAST(project_id AS integer) = '5'::int", "project_id::int4 = '5'::int4"),
        ('"status" = $1', "status = $1"),
        ("status = 'it''s'", "status = 'it''s'"),
        ("  status   =   'spaced'  ", "status = 'spaced'"),
    ],
)
def test_allowed_where_is_forwarded_in_the_form_electric_parses(where: str, forwarded: str) -> None:
    assert check_client_where(where, ALLOWED, 0).sql == forwarded


def test_params_are_renumbered_after_the_rules_params() -> None:
    checked = check_client_where("status = $1 OR project_id = $2", ALLOWED, 3)
    assert checked.sql == "(status = $4) OR (project_id = $5)"
    assert checked.param_count == 2


def test_dollar_inside_a_string_literal_is_not_a_parameter() -> None:
    assert check_client_where("status = '$1'", ALLOWED, 5).sql == "status = '$1'"


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("tenant_id = 'x'", "where: column 'tenant_id' may not be used; columns allowed: "),
        ("tasks.status = 'x'", "plain column names"),
        ("status = upper('x')", "a function call is not supported"),
        ("status = (SELECT 1)", "a sub-select (SELECT ...) is not supported"),
        ("status IN (SELECT 'a')", "a sub-select"),
        ("status ~ 'x'", "operator ~ is not supported"),
        ("project_id + 1 = 2", "arithmetic"),
        ("created_at::timestamptz > '2024-01-01'", "a date alone is refused"),
        ("status = ANY('{a}')", "ANY (arrays are not supported)"),
        ("status = $1::text", "a cast on a parameter is not supported; cast the column instead"),
        ("project_id::numeric = 1", "cast to numeric"),
        ("created_at::timetz > '10:00'", "cast to timetz"),
        ("status = 'a' -- tail", "comments"),
        ("status = 'a' /* x */", "comments"),
        ("status = 'a'; SELECT 1", "';'"),
        ("status = 'a' ORDER BY status", "does not parse"),
        ("status = 'a' UNION SELECT 1", "does not parse"),
        ("status = $2", "without gaps"),
        ("status = $0", "without gaps"),
        ("status::pg_catalog.regclass IS NULL", "cast to regclass"),
        ("status::public.evil IS NULL", "cast to public.evil"),
        ("status::text[] IS NULL", "array bounds"),
        ("'unterminated", "does not parse"),
        ("ROW(status, project_id) = ROW('a', 1)", "row constructor"),
        ("x" * 9000, "longer than"),
    ],
)
def test_disallowed_where_is_refused_with_a_precise_message(where: str, fragment: str) -> None:
    with pytest.raises(Refusal) as caught:
        check_client_where(where, ALLOWED, 0)
    assert caught.value.code is Code.INVALID_WHERE
    assert fragment in caught.value.message


def test_order_by_accepts_columns_with_direction_and_nulls() -> None:
    assert (
        check_order_by('"status" DESC NULLS LAST, created_at ASC', ALLOWED)
        == "status DESC NULLS LAST, created_at ASC"
    )


def test_order_by_without_an_allow_list_takes_any_plain_column() -> None:
    assert check_order_by('salary DESC, "Order"', None) == 'salary DESC, "Order"'


def test_order_by_a_column_outside_the_allow_list_is_column_not_allowed() -> None:
    with pytest.raises(Refusal) as caught:
        check_order_by("status, salary DESC", ALLOWED)
    assert caught.value.code is Code.COLUMN_NOT_ALLOWED
    assert "'salary'" in caught.value.message


@pytest.mark.parametrize(
    "order_by",
    ["tasks.status", "lower(status)", "1", "status USING <", "status; SELECT 1", "", "$1"],
)
def test_order_by_outside_the_grammar_is_refused(order_by: str) -> None:
    with pytest.raises(Refusal) as caught:
        check_order_by(order_by, None)
    assert caught.value.code is Code.INVALID_WHERE


def test_a_where_is_parsed_into_a_tree_once_and_read_back_cheaply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # #17: the emitter's parse-back check re-reads the written text with libpg_query's JSON,
    # not a second Python AST; a repeated where is not parsed at all. The wrappers count calls
    # to the real parsers; nothing is faked.
    calls: list[str] = []

    def tree(text: str) -> Any:
        calls.append("tree")
        return parse_sql(text)

    def json_text(text: str) -> str:
        calls.append("json")
        return parse_sql_json(text)

    monkeypatch.setattr("gateway.sql.expressions.parse_sql", tree)
    monkeypatch.setattr("gateway.sql.emit.parse_sql_json", json_text)
    where = "status = 'a' OR NOT (project_id IN (1, 2) AND status IS NOT TRUE)"
    decisions = Decisions(TokenVerifier(KeyRing(StaticKeys(())), TokenPolicy()))
    decisions.client_where(where, ALLOWED, 1, "where", frozenset())
    assert calls == ["tree", "json"]
    decisions.client_where(where, ALLOWED, 1, "where", frozenset())
    assert calls == ["tree", "json"]  # kept by the decisions cache


def test_a_where_of_more_tokens_than_the_cap_is_refused_before_it_is_parsed() -> None:
    values = ",".join(["1"] * MAX_WHERE_TOKENS)
    assert len(f"project_id IN ({values})") < MAX_WHERE_LENGTH
    with pytest.raises(Refusal) as refused:
        check_client_where(f"project_id IN ({values})", ALLOWED, 0)
    assert refused.value.code is Code.INVALID_WHERE
    assert f"more than {MAX_WHERE_TOKENS} tokens" in refused.value.message
    fits = ",".join(["1"] * (MAX_WHERE_TOKENS // 2 - 3))
    check_client_where(f"project_id IN ({fits})", ALLOWED, 0)


def test_nesting_deeper_than_the_limit_is_refused_without_a_crash() -> None:
    deep = "NOT (" * 150 + "status = 'a'" + ")" * 150
    with pytest.raises(Refusal) as refused:
        check_client_where(deep, ALLOWED, 0)
    assert "nests more than 100 levels" in refused.value.message
