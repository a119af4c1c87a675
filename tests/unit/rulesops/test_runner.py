"""Cases run through the serving path: identity from claims, the query parser, the planner."""

from __future__ import annotations

import textwrap

from gateway.rules.model import Rules
from gateway.rulesops.cases import parse_cases
from gateway.rulesops.runner import CaseResult, run_case, run_cases, untested_pairs
from gateway.shape.plan import UpstreamRequest
from tests.factories import make_rules


def run(*parts: str, rules: Rules | None = None) -> CaseResult:
    """Run one case whose keys are written in `parts` (each dedented on its own)."""
    case = "".join(textwrap.dedent(part) for part in parts)
    text = "cases:\n  - " + textwrap.indent(case, "    ").lstrip()
    (parsed,) = parse_cases(text, path="t.yaml")
    return run_case(parsed, rules or make_rules())


ALICE = "identity: {user: alice, tenant: acme, role: member}\n"


def test_a_case_whose_plan_meets_every_expectation_passes() -> None:
    result = run(
        ALICE,
        """\
        request: {shape: tasks, where: "status = $1", params: [open]}
        allowed:
          table: tasks
          where: ["tenant_id = 'acme'", "assigned_to = :user", "status = 'open'"]
          params: [acme, alice, open]
          columns: [id, tenant_id, project_id, title, status, assigned_to]
          upstream: default
        """,
    )
    assert result.passed, result.mismatches
    assert isinstance(result.outcome, UpstreamRequest)
    assert result.identity is not None
    assert result.identity.role == "member"


def test_a_missing_where_term_is_named_with_the_planned_terms() -> None:
    result = run(ALICE + "request: tasks\nallowed: {where: \"assigned_to = 'bob'\"}\n")
    assert result.mismatches == (
        "where: expected a term assigned_to = 'bob', got tenant_id = 'acme' AND "
        "assigned_to = 'alice'",
    )


def test_an_unfiltered_expectation_fails_on_a_filtered_plan() -> None:
    result = run(ALICE + "request: tasks\nallowed: {where: null}\n")
    assert result.mismatches == (
        "where: expected none (every row), got tenant_id = 'acme' AND assigned_to = 'alice'",
    )


def test_table_params_columns_and_upstream_mismatches_are_each_reported() -> None:
    result = run(
        ALICE,
        """\
        request: drafts
        allowed: {table: public.tasks, params: [acme], columns: [id], upstream: eu}
        """,
    )
    assert result.mismatches == (
        "table: expected public.tasks, got public.drafts",
        "params: expected [acme], got [acme, alice]",
        "columns: expected [id], got (all)",
        "upstream: expected eu, got default",
    )


def test_an_expected_refusal_that_is_allowed_fails_with_the_plan() -> None:
    result = run(ALICE + "request: drafts\nrefused: shape_not_allowed\n")
    assert result.mismatches == (
        "expected refused shape_not_allowed, got allowed: public.drafts where "
        "tenant_id = 'acme' AND user_id = 'alice' columns (all) upstream default",
    )


def test_an_expected_allow_that_is_refused_fails_with_the_code_and_message() -> None:
    result = run(ALICE + "request: org_notes\nallowed: true\n")
    assert result.mismatches == (
        "expected allowed, got refused 403 shape_not_allowed "
        "(role 'member' may not read shape 'org_notes')",
    )


def test_a_refusal_with_the_expected_code_passes() -> None:
    assert run(
        ALICE + "request: {shape: tasks, columns: [salary]}\nrefused: column_not_allowed\n"
    ).passed


def test_extra_claims_reach_claim_placeholders() -> None:
    admin = "identity: {user: bob, tenant: acme, role: admin, claims: {org: sales}}\n"
    result = run(admin + "request: org_notes\nallowed: {where: \"org = 'sales'\"}\n")
    assert result.passed, result.mismatches
    no_claim = "identity: {user: bob, tenant: acme, role: admin}\n"
    assert run(no_claim + "request: org_notes\nrefused: missing_claim\n").passed


def test_x_tenant_id_picks_a_membership_and_its_role_as_the_server_does() -> None:
    dave = "identity: {user: dave, tenant: acme, role: member, memberships: {globex: admin}}\n"
    picked = run(dave + "request: {shape: tasks, x_tenant_id: globex}\nallowed: true\n")
    assert picked.identity is not None
    assert (picked.identity.tenant, picked.identity.role) == ("globex", "admin")
    outside = dave + "request: {shape: tasks, x_tenant_id: initech}\nrefused: tenant_not_member\n"
    assert run(outside).passed


def test_memberships_need_the_rules_to_map_a_memberships_claim() -> None:
    rules = make_rules("""\
        version: 1
        roles: [member]
        shapes:
          things: {table: public.things, where: "tenant_id = :tenant", allow: [member]}
        """)
    case = "identity: {user: a, tenant: t, role: member, memberships: {u: member}}\n"
    result = run(case, "request: things\nallowed: true\n", rules=rules)
    assert result.outcome is None
    assert result.mismatches == ("identity.memberships: the rules map no memberships claim",)


def test_subset_parameters_are_checked_as_a_post_body_would_be() -> None:
    body = "request: {shape: tasks, subset: {where: 'status = $1', params: [open], limit: 5}}\n"
    assert run(ALICE + body + "allowed: {where: \"assigned_to = 'alice'\"}\n").passed
    order = "request: {shape: tasks, subset: {order_by: salary}}\nrefused: column_not_allowed\n"
    assert run(ALICE + order).passed


def test_routing_decides_the_expected_upstream() -> None:
    rules = make_rules("""\
        version: 1
        roles: [member]
        upstreams: {eu: {url: "http://eu.example"}}
        routing: {tenants: {acme: eu}}
        shapes:
          things: {table: public.things, where: "tenant_id = :tenant", allow: [member]}
        """)
    assert run(ALICE, "request: things\nallowed: {upstream: eu}\n", rules=rules).passed


def test_untested_pairs_lists_each_shape_and_role_no_case_exercised() -> None:
    rules = make_rules()
    (case,) = parse_cases("cases:\n  - {identity: {user: a, tenant: acme, role: admin}, "
                          "request: tasks, allowed: true}\n", path="t.yaml")  # fmt: skip
    untested = untested_pairs(run_cases([case], rules), rules)
    assert ("tasks", "admin") not in untested
    assert ("tasks", "member") in untested
    assert len(untested) == len(rules.shapes) * len(rules.roles) - 1
