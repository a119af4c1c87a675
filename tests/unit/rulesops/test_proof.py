"""Row-level proof in the real PostgreSQL: planned queries run read only, and a rule that lets
another tenant's row through fails its `rows_visible_only_where` assertion."""

from __future__ import annotations

import textwrap

import psycopg
import pytest

from gateway.rules.model import Rules
from gateway.rulesops.cases import parse_cases
from gateway.rulesops.proof import ProofUnavailableError, build_query, prove
from gateway.rulesops.runner import CaseResult, run_cases
from gateway.shape.plan import UpstreamRequest
from tests.factories import make_rules
from tests.unit.rulesops.conftest import World

pytestmark = pytest.mark.postgres


def proved(world: World, rules: Rules, cases: str) -> list[CaseResult]:
    parsed = parse_cases("cases:\n" + textwrap.dedent(cases), path="t.yaml")
    return prove(run_cases(parsed, rules), world.url)


MEMBER_CASE = """\
  - name: alice sees only acme's tasks assigned to her
    identity: {user: alice, tenant: acme, role: member}
    request: tasks
    allowed: {rows_visible_only_where: "tenant_id = 'acme' AND assigned_to = 'alice'", min_rows: 1}
"""


def test_a_rule_scoped_by_tenant_and_user_passes_its_row_assertion(world: World) -> None:
    rules = world.rules("tenant_id = :tenant AND assigned_to = :user")
    (result,) = proved(world, rules, MEMBER_CASE)
    assert result.passed, result.mismatches
    assert result.rows == 1


def test_a_rule_that_lets_another_tenants_row_through_fails_the_row_assertion(
    world: World,
) -> None:
    leaky = world.rules("assigned_to = :user", scope="user")  # loads when said, yet leaks
    (result,) = proved(world, leaky, MEMBER_CASE)
    assert result.mismatches == (
        "rows_visible_only_where: 1 of 2 visible rows fail tenant_id = 'acme' AND "
        "assigned_to = 'alice'",
    )
    assert result.rows == 2


def test_fewer_rows_than_min_rows_fails(world: World) -> None:
    rules = world.rules("tenant_id = :tenant AND assigned_to = :user")
    (result,) = proved(
        world,
        rules,
        """\
      - identity: {user: nobody, tenant: acme, role: member}
        request: tasks
        allowed: {min_rows: 1}
    """,
    )
    assert result.mismatches == ("min_rows: expected at least 1, got 0",)


def test_client_values_are_bound_as_parameters_against_typed_columns(world: World) -> None:
    rules = world.rules("tenant_id = :tenant")
    (result,) = proved(
        world,
        rules,
        """\
      - identity: {user: bob, tenant: globex, role: admin}
        request: {shape: tasks, where: "project_id = $1 AND status = $2", params: ["2", "open"]}
        allowed: {rows_visible_only_where: "tenant_id = 'globex'", min_rows: 2}
    """,
    )
    assert result.passed, result.mismatches
    assert result.rows == 2


def test_schema_per_tenant_tables_are_read_in_the_tenants_schema(world: World) -> None:
    rules = world.rules("tenant_id = :tenant")
    results = proved(
        world,
        rules,
        """\
      - identity: {user: alice, tenant: acme, role: member}
        request: documents
        allowed: {rows_visible_only_where: "owner = 'acme'", min_rows: 1}
      - identity: {user: bob, tenant: globex, role: admin}
        request: documents
        allowed: {rows_visible_only_where: "owner = 'acme'"}
    """,
    )
    assert results[0].passed, results[0].mismatches
    assert results[1].mismatches == (
        "rows_visible_only_where: 1 of 1 visible rows fail owner = 'acme'",
    )


def test_a_planned_query_postgresql_rejects_fails_the_case(world: World) -> None:
    rules = world.rules("tenant_id = :tenant", columns="[id, status, project_id, salary]")
    (result,) = proved(
        world,
        rules,
        """\
      - {identity: {user: alice, tenant: acme, role: member}, request: tasks, allowed: true}
    """,
    )
    assert result.mismatches == (
        'database: the planned query fails: column "salary" does not exist',
    )


def test_the_proof_transaction_is_read_only_and_rolled_back(world: World) -> None:
    rules = world.rules("tenant_id = :tenant")
    (result,) = proved(
        world,
        rules,
        f"""\
      - identity: {{user: bob, tenant: globex, role: admin}}
        request: tasks
        allowed: {{rows_visible_only_where: "nextval('{world.schema}.probe') > 0"}}
    """,
    )
    assert len(result.mismatches) == 1
    assert "read-only transaction" in result.mismatches[0]
    with psycopg.connect(world.url) as conn:
        called = conn.execute(f"SELECT is_called FROM {world.schema}.probe").fetchone()  # noqa: S608
    assert called == (False,)


def test_refused_cases_and_cases_marked_database_false_are_not_run(world: World) -> None:
    rules = world.rules("tenant_id = :tenant")
    results = proved(
        world,
        rules,
        """\
      - {identity: {user: a, tenant: acme, role: member}, request: nope, refused: unknown_shape}
      - identity: {user: a, tenant: no-such-schema, role: member}
        request: documents
        allowed: {database: false}
    """,
    )
    assert all(result.passed and result.rows is None for result in results)


def test_an_unreachable_database_is_a_clear_error(world: World) -> None:
    with pytest.raises(ProofUnavailableError, match="cannot connect to the database"):
        prove([], "postgresql://127.0.0.1:1/none")


def test_the_query_selects_the_planned_columns_and_counts_rows_failing_the_assertion() -> None:
    request = UpstreamRequest(
        shape="tasks", table="public.tasks", upstream=make_rules().upstreams["default"],
        where="tenant_id = $1", params=("acme",), sources=("tenant",), columns=("id", "Odd"),
        query=(), live=False, sse=False, subset=False,
    )  # fmt: skip
    assert build_query(request, "id > 0") == (
        "SELECT count(*), count(*) FILTER (WHERE (id > 0) IS NOT TRUE) "
        'FROM (SELECT id,"Odd" FROM public.tasks WHERE tenant_id = $1) AS visible'
    )
