"""Rule test files load into cases with their lines, and every problem reads like a rules
problem: `PATH:LINE: key: message`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.errors import Code
from gateway.rules.load import RulesError
from gateway.rulesops.cases import load_cases, parse_cases
from gateway.rulesops.model import Allowed, Refused
from tests.factories import SHIPPED_RULES

SHIPPED_TESTS = SHIPPED_RULES.with_name("shape_rules.test.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_cases(textwrap.dedent(text), path="t.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_the_shipped_test_file_loads_every_case_with_its_line_and_name() -> None:
    cases = load_cases(SHIPPED_TESTS)
    assert len(cases) > 30
    lines = SHIPPED_TESTS.read_text().splitlines()
    for case in cases:
        assert case.path == str(SHIPPED_TESTS)
        assert f"name: {case.name}" in lines[case.line - 1]


def test_a_named_identity_and_an_inline_identity_both_load() -> None:
    first, second = parse_cases(
        textwrap.dedent("""\
        identities:
          alice: {user: alice, tenant: acme, role: member}
        cases:
          - {identity: alice, request: tasks, allowed: true}
          - identity: {user: bob, tenant: globex, memberships: {globex: admin}, claims: {org: x}}
            request: tasks
            refused: shape_not_allowed
        """),
        path="t.yaml",
    )
    assert (first.identity.user, first.identity.role) == ("alice", "member")
    assert first.name == "cases[0]"
    assert first.line == 4
    assert second.identity.memberships == {"globex": "admin"}
    assert second.identity.claims == {"org": "x"}
    assert second.expect == Refused(Code.SHAPE_NOT_ALLOWED)


def test_a_request_builds_the_query_string_a_client_would_send() -> None:
    (case,) = parse_cases(
        textwrap.dedent("""\
        cases:
          - identity: {user: a, tenant: t, role: r}
            request: {shape: tasks, where: "status = $1", params: {1: open}, columns: [id, title]}
            allowed: true
        """),
        path="t.yaml",
    )
    assert case.request.query() == [
        ("table", "tasks"),
        ("offset", "-1"),
        ("where", "status = $1"),
        ("params[1]", "open"),
        ("columns", "id,title"),
    ]


def test_null_where_and_columns_expect_no_filter_and_no_allow_list() -> None:
    (case,) = parse_cases(
        "cases:\n  - {identity: {user: a}, request: c, allowed: {where: null, columns: null}}\n",
        path="t.yaml",
    )
    assert case.expect == Allowed(unfiltered=True, all_columns=True)


def test_expected_where_terms_are_parsed_at_load_into_canonical_terms() -> None:
    (case,) = parse_cases(
        "cases:\n  - identity: {user: a}\n    request: c\n"
        "    allowed: {where: [\"TENANT_ID='acme' AND assigned_to = :user\"]}\n",
        path="t.yaml",
    )
    assert isinstance(case.expect, Allowed)
    assert case.expect.where == ("tenant_id = 'acme'", "assigned_to = :user")


def test_a_yaml_syntax_error_is_reported_with_its_line_like_a_rules_error() -> None:
    found = problems("""\
    cases:
      - name: x
       identity: y
    """)
    assert len(found) == 1
    assert found[0].startswith("t.yaml:3: (yaml): ")


def test_an_unknown_key_is_reported_with_its_line_and_the_accepted_keys() -> None:
    found = problems("""\
    cases:
      - identity: {user: a}
        request: tasks
        allowed: {colums: [id]}
    """)
    assert found == [
        "t.yaml:4: cases[0].allowed.colums: unknown key; accepted: table, where, params, "
        "columns, upstream, rows_visible_only_where, min_rows, database"
    ]


def test_a_duplicate_key_is_a_problem_not_silently_the_last_value() -> None:
    found = problems("""\
    cases:
      - identity: {user: a}
        request: tasks
        refused: unknown_shape
        refused: unknown_role
    """)
    assert found == [
        "t.yaml:5: cases[0].refused: duplicate key (YAML would silently keep the last)"
    ]


def test_a_refusal_code_the_rules_cannot_decide_is_a_problem() -> None:
    found = problems("cases:\n  - {identity: {user: a}, request: t, refused: rate_limited}\n")
    assert len(found) == 1
    assert found[0].startswith("t.yaml:2: cases[0].refused: 'rate_limited' is not a code the")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    found = problems("""\
    cases:
      - name: both
        identity: nobody
        request: tasks
        allowed: true
        refused: unknown_shape
      - identity: {user: a, rol: x}
        request: tasks
        allowed: {where: "tenant_id = = 1", rows_visible_only_where: "true; SELECT 1"}
    """)
    assert found == [
        "t.yaml:2: cases[0]: needs exactly one of `allowed` and `refused`",
        "t.yaml:3: cases[0].identity: no identity 'nobody': none are defined",
        "t.yaml:7: cases[1].identity.rol: unknown key; accepted: user, tenant, role, "
        "memberships, plan, claims",
        "t.yaml:9: cases[1].allowed.rows_visible_only_where: must be one SQL boolean "
        "expression: several statements; send one boolean expression",
        "t.yaml:9: cases[1].allowed.where: 'tenant_id = = 1' does not parse: syntax error "
        'at or near "="',
    ]


def test_a_file_without_cases_is_a_problem() -> None:
    assert problems("version: 1\n") == ["t.yaml:1: cases: is required: a list of cases"]
    assert problems("cases: []\n") == ["t.yaml:1: cases: must list at least one case"]


def test_an_unreadable_file_is_a_problem_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.test.yaml"
    with pytest.raises(RulesError) as caught:
        load_cases(missing)
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{missing}:1: (file): cannot be read")


def test_allowed_false_is_a_problem_pointing_to_refused() -> None:
    assert problems("cases:\n  - {identity: {user: a}, request: t, allowed: false}\n") == [
        "t.yaml:2: cases[0].allowed: must be true or a mapping of expectations (or use refused)"
    ]


def test_numbers_in_params_mean_their_text_as_a_client_would_send_them() -> None:
    (case,) = parse_cases(
        "cases:\n  - identity: {user: a}\n    request: {shape: t, params: [2],"
        " subset: {where: 'project_id = $1', params: [7]}}\n    allowed: true\n",
        path="t.yaml",
    )
    assert case.request.params == {1: "2"}
    assert case.request.subset == {"where": "project_id = $1", "params": {"1": "7"}}
