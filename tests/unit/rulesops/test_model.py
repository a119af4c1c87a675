"""A rule test case as data: the query a client would send for a request, which expectations
need rows, and where a case is."""

from __future__ import annotations

from gateway.errors import Code
from gateway.rulesops.model import (
    DECIDED_BY_RULES,
    Allowed,
    Case,
    IdentitySpec,
    Refused,
    RequestSpec,
)


def test_a_request_is_the_query_a_client_sends_with_params_in_number_order() -> None:
    request = RequestSpec(
        shape="tasks", where="a = $1 and b = $10 and c = $2", params={10: "z", 1: "x", 2: "y"},
        columns="id,title",
    )  # fmt: skip
    assert request.query() == [
        ("table", "tasks"),
        ("offset", "-1"),
        ("where", "a = $1 and b = $10 and c = $2"),
        ("params[1]", "x"),
        ("params[2]", "y"),
        ("params[10]", "z"),
        ("columns", "id,title"),
    ]


def test_a_bare_request_asks_only_for_the_table_from_the_start() -> None:
    assert RequestSpec(shape="tasks").query() == [("table", "tasks"), ("offset", "-1")]


def test_only_row_expectations_need_the_database() -> None:
    assert not Allowed(table="public.tasks", where=("tenant_id = $1",)).asserts_rows
    assert Allowed(rows_visible_only_where="tenant_id = 'acme'").asserts_rows
    assert Allowed(min_rows=0).asserts_rows


def test_a_case_is_located_by_its_file_and_line() -> None:
    case = Case(
        "tests/rules.yaml", 12, "member reads", IdentitySpec(), RequestSpec("tasks"), Allowed()
    )
    assert case.location == "tests/rules.yaml:12"


def test_state_dependent_refusals_cannot_be_expected_of_the_rules() -> None:
    assert Code.SHAPE_NOT_ALLOWED in DECIDED_BY_RULES
    assert Code.UPSTREAM_UNAVAILABLE not in DECIDED_BY_RULES
    assert Refused(Code.UNKNOWN_SHAPE).code in DECIDED_BY_RULES


def test_an_empty_where_or_columns_is_still_sent_so_a_case_can_expect_its_refusal() -> None:
    assert RequestSpec(shape="tasks", where="", columns="").query()[2:] == [
        ("where", ""),
        ("columns", ""),
    ]
