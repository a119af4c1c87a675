"""Properties: no client input removes, weakens or re-binds the rule's where and parameters,
and every where the gateway forwards is one Electric parses (#9)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pglast import ast
from pglast.enums import BoolExprType

from gateway.errors import Refusal
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import plan_upstream_request
from gateway.sql.expressions import parse_expression, walk
from tests.factories import make_identity, make_rules
from tests.unit.sql.electric_where import electric_where_problem

RULES = make_rules()
FRAGMENTS = [
    "status = 'open'", "status = $1", "project_id = $2", ") OR (1=1", "1=1) OR (1=1",
    "tenant_id = $1", "status = 'x' OR true", "true", "-- ", "/*", "'", "\"", ";", "$1",
    "status IN ($1, $2)", "NOT status IS NULL", "(status = 'a'", "status = 'a')",
    "project_id BETWEEN $1 AND $2", "status::text = $1", "pg_sleep(1) IS NULL",
]  # fmt: skip
HOSTILE_VALUES = ["' OR '1'='1", "$1", "acme", ") OR (1=1", "globex", ""]
KEYS = [
    "where", "params[1]", "params[2]", "params[3]", "columns", "live", "handle", "cursor",
    "subset__where", "subset__params", "subset__order_by", "replica", "log", "secret", "x",
]  # fmt: skip


def conjuncts(node: ast.Node) -> tuple[ast.Node, ...]:
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        return tuple(node.args or ())
    return (node,)


values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(FRAGMENTS),
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4).map(" ".join),
)


ATOMS = ["status = ?", "project_id <> ?", "status IN (?, 'x')", "status LIKE ?", "true",
         "status IS NULL", "project_id BETWEEN ? AND ?", "NOT status = ?", "(status != ?)",
         "NOT (status = ? OR project_id IS NOT NULL)", "status::text = ?", "NOT status ILIKE ?",
         "CAST(project_id AS bigint) >= '-1'::int8", "project_id NOT IN (?, -1)",
         "NOT (project_id NOT BETWEEN ? AND 5)", "\"status\" = ?"]  # fmt: skip


@st.composite
def valid_where(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A client where the grammar accepts, with params: hostile values, never hostile SQL."""
    atoms = draw(st.lists(st.sampled_from(ATOMS), min_size=1, max_size=4))
    joiners = [draw(st.sampled_from([" AND ", " OR ", ") AND (", " OR NOT "])) for _ in atoms[1:]]
    text = "".join(j + a for j, a in zip(["", *joiners], atoms, strict=True))
    text = f"({text})" if ") AND (" in text else text
    pieces = text.split("?")
    text = pieces[0] + "".join(f"${n}{rest}" for n, rest in enumerate(pieces[1:], 1))
    values = [draw(st.sampled_from(HOSTILE_VALUES)) for _ in pieces[1:]]
    if draw(st.booleans()):
        return [("where", text), *((f"params[{n}]", v) for n, v in enumerate(values, 1))]
    subset_params = json.dumps({str(n): v for n, v in enumerate(values, 1)})
    return [("subset__where", text), ("subset__params", subset_params)]


@settings(max_examples=1500, deadline=None)
@given(
    extras=st.one_of(
        st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=6),
        valid_where(),
    ),
    shape=st.sampled_from(["tasks", "projects", "drafts", "org_notes", "countries"]),
    role=st.sampled_from(["admin", "manager", "member"]),
    tenant=st.sampled_from(["acme", "globex", "' OR '1'='1"]),
)
def test_rule_where_survives_every_client_query_as_its_own_conjuncts(
    extras: list[tuple[str, str]], shape: str, role: str, tenant: str
) -> None:
    identity = make_identity(role=role, tenant=tenant, claims={"org": "sales"})
    try:
        query = parse_shape_query([("table", shape), ("offset", "-1"), *extras])
        request = plan_upstream_request(query, identity, RULES)
    except Refusal:
        return
    grant = RULES.shapes[shape].grants[role]
    forwarded = dict(request.query)
    for key in ("where", "subset__where"):
        if key in forwarded:
            assert electric_where_problem(forwarded[key]) is None, forwarded[key]
    keys = [key for key, _ in request.query]
    assert len(keys) == len(set(keys))
    assert "secret" not in keys
    assert request.table == RULES.shapes[shape].table
    if grant.where is None:
        return
    bound = {
        "user": identity.user,
        "tenant": identity.tenant,
        "role": identity.role,
        "claims.org": "sales",
    }
    rule_params = len(grant.where.bindings)
    assert request.params[:rule_params] == tuple(bound[b] for b in grant.where.bindings)
    assert request.where is not None
    rule = conjuncts(parse_expression(grant.where.sql))
    final = conjuncts(parse_expression(request.where))
    assert final[: len(rule)] == rule
    for client_part in final[len(rule) :]:
        for node in walk(client_part):
            if isinstance(node, ast.ParamRef):
                assert (node.number or 0) > rule_params
