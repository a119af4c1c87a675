"""The planner: what each identity's request becomes upstream, and every refusal it makes."""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

import pytest

from gateway.errors import Code, Refusal
from gateway.rules.model import Rules
from gateway.shape.params import ShapeQuery, parse_shape_query, parse_subset_body
from gateway.shape.plan import UpstreamRequest, plan_upstream_request
from tests.factories import make_identity, make_rules

RULES = make_rules()


def planned(
    pairs: list[tuple[str, str]] | None = None, rules: Rules = RULES, **identity: object
) -> UpstreamRequest:
    query = parse_shape_query(
        pairs if pairs is not None else [("table", "tasks"), ("offset", "-1")]
    )
    return plan_upstream_request(query, make_identity(**identity), rules)


def refusal(
    pairs: list[tuple[str, str]] | None = None, rules: Rules = RULES, **identity: object
) -> Refusal:
    with pytest.raises(Refusal) as caught:
        planned(pairs, rules, **identity)
    return caught.value


def test_member_gets_tenant_and_user_filter_with_values_bound_as_params() -> None:
    request = planned(role="member")
    assert request.table == "public.tasks"
    assert request.where == "(tenant_id = $1) AND (assigned_to = $2)"
    assert request.params == ("acme", "alice")
    assert request.sources == ("tenant", "user")
    assert request.columns == ("id", "tenant_id", "project_id", "title", "status", "assigned_to")


def test_admin_gets_the_shape_where_and_all_columns() -> None:
    request = planned(role="admin")
    assert request.where == "tenant_id = $1"
    assert request.params == ("acme",)
    assert request.columns is None


def test_upstream_query_is_rebuilt_with_secret_added_only_in_url() -> None:
    request = planned(
        [
            ("table", "tasks"),
            ("offset", "0_inf"),
            ("handle", "123-456"),
            ("live", ""),
            ("cursor", "42"),
            ("log", "full"),
            ("replica", "full"),
            ("cache-buster", "abc-1"),
            ("expired_handle", "9-9"),
        ]
    )
    query = dict(request.query)
    assert "secret" not in query
    assert query["table"] == "public.tasks"
    assert query["live"] == "true"
    assert query["handle"] == "123-456"
    assert query["cursor"] == "42"
    url = request.url()
    assert url.query["secret"] == "electric-secret"
    assert request.url(redact=True).query["secret"] == "REDACTED"
    assert url.path == "/v1/shape"


def test_client_where_is_anded_after_rule_where_with_params_renumbered() -> None:
    request = planned(
        [("table", "tasks"), ("offset", "-1"), ("where", "status = $1"), ("params[1]", "open")]
    )
    assert request.where == "((tenant_id = $1) AND (assigned_to = $2)) AND (status = $3)"
    assert request.params == ("acme", "alice", "open")
    assert request.sources == ("tenant", "user", "client")


def test_public_shape_has_no_filter_for_any_known_role() -> None:
    for role in ("admin", "manager", "member"):
        request = planned([("table", "countries"), ("offset", "-1")], role=role)
        assert request.where is None
        assert request.params == ()


def test_sse_request_forwards_both_sse_flags_and_live() -> None:
    request = planned(
        [("table", "tasks"), ("offset", "1_0"), ("handle", "h-1"), ("live", "true"),
         ("live_sse", "true")]
    )  # fmt: skip
    query = dict(request.query)
    assert (query["live"], query["live_sse"], query["experimental_live_sse"]) == ("true",) * 3
    assert request.sse


def test_unknown_role_is_refused() -> None:
    assert refusal(role="owner").code is Code.UNKNOWN_ROLE


def test_unknown_shape_is_refused_even_when_it_is_a_real_table_name() -> None:
    assert refusal([("table", "public.tasks"), ("offset", "-1")]).code is Code.UNKNOWN_SHAPE
    assert refusal([("table", "salaries"), ("offset", "-1")]).code is Code.UNKNOWN_SHAPE


def test_role_not_in_allow_is_refused_shape_not_allowed() -> None:
    assert refusal([("table", "org_notes"), ("offset", "-1")]).code is Code.SHAPE_NOT_ALLOWED


def test_missing_claim_for_claims_placeholder_is_refused() -> None:
    pairs = [("table", "org_notes"), ("offset", "-1")]
    assert refusal(pairs, role="admin").code is Code.MISSING_CLAIM
    request = planned(pairs, role="admin", claims={"org": "sales"})
    assert request.params == ("acme", "sales")


def test_columns_outside_the_allow_list_are_refused() -> None:
    pairs = [("table", "tasks"), ("offset", "-1"), ("columns", "id,salary")]
    refused = refusal(pairs)
    assert refused.code is Code.COLUMN_NOT_ALLOWED
    assert "salary" in refused.message


def test_client_columns_subset_is_forwarded_in_canonical_form() -> None:
    request = planned([("table", "tasks"), ("offset", "-1"), ("columns", 'ID,"title"')])
    assert dict(request.query)["columns"] == "id,title"


def test_quoted_column_that_differs_by_case_is_not_the_allowed_column() -> None:
    pairs = [("table", "tasks"), ("offset", "-1"), ("columns", '"Id"')]
    assert refusal(pairs).code is Code.COLUMN_NOT_ALLOWED


def test_client_where_on_shape_without_client_where_is_refused() -> None:
    pairs = [("table", "projects"), ("offset", "-1"), ("where", "name = 'x'")]
    assert refusal(pairs).code is Code.WHERE_NOT_ALLOWED


@pytest.mark.parametrize(
    "where",
    [
        "1=1) OR (1=1",
        "status = 'a') OR (1=1",
        "tenant_id = 'globex'",
        "status = 'a' OR tenant_id IS NOT NULL",
        "status = (SELECT 'x')",
        "project_id IN (SELECT id FROM public.projects)",
        "pg_sleep(10) IS NULL",
        "status = 'a' -- ",
        "status = 'a' /* c */",
        "status = 'a'; DELETE FROM tasks",
        "status = current_user",
        "status::regclass IS NULL",
        "EXISTS (SELECT 1)",
        "",
    ],
)
def test_hostile_client_where_is_refused_invalid_where(where: str) -> None:
    pairs = [("table", "tasks"), ("offset", "-1"), ("where", where)]
    assert refusal(pairs).code is Code.INVALID_WHERE


def test_client_params_must_match_the_where_exactly() -> None:
    base = [("table", "tasks"), ("offset", "-1"), ("where", "status = $1")]
    assert refusal(base).code is Code.INVALID_WHERE
    assert refusal([*base, ("params[1]", "a"), ("params[2]", "b")]).code is Code.INVALID_WHERE
    no_where = [("table", "tasks"), ("offset", "-1"), ("params[1]", "a")]
    assert refusal(no_where).code is Code.INVALID_PARAMETER


def test_client_cannot_rebind_the_rule_params_with_its_own_numbering() -> None:
    request = planned(
        [("table", "tasks"), ("offset", "-1"), ("where", "status = $1"), ("params[1]", "globex")],
        role="admin",
    )
    assert request.params[0] == "acme"
    assert request.where == "(tenant_id = $1) AND (status = $2)"


def test_per_tenant_table_maps_dashes_to_underscores() -> None:
    request = planned([("table", "documents"), ("offset", "-1")], tenant="acme-eu")
    assert request.table == "tenant_acme_eu.documents"


@pytest.mark.parametrize("tenant", ["a_b", "Acme", "acme.eu", "acme eu", "a" * 49, "ü", ""])
def test_tenant_ids_that_could_collide_in_a_schema_name_are_refused(tenant: str) -> None:
    refused = refusal([("table", "documents"), ("offset", "-1")], tenant=tenant)
    assert refused.code is Code.INVALID_TENANT


def test_subset_where_is_checked_like_where_and_forwarded_canonically() -> None:
    request = planned(
        [
            ("table", "tasks"),
            ("offset", "-1"),
            ("subset__where", "status = $1"),
            ("subset__params", '{"1": "open"}'),
            ("subset__limit", "10"),
            ("subset__order_by", "status DESC"),
            ("subset__where_expr", '{"type":"x"}'),
        ]
    )
    query = dict(request.query)
    assert query["subset__where"] == "status = $1"
    assert query["subset__params"] == '{"1": "open"}'
    assert query["subset__order_by"] == "status DESC"
    assert "subset__where_expr" not in query
    assert query["where"] == "(tenant_id = $1) AND (assigned_to = $2)"


@pytest.mark.parametrize(
    ("shape", "role", "order_by", "forwarded"),
    [
        ("tasks", "member", "title DESC, assigned_to", "title DESC, assigned_to"),  # allow-list
        ("tasks", "admin", "salary NULLS FIRST", "salary NULLS FIRST"),  # no allow-list
        ("projects", "member", "name", "name"),  # a shape without client_where
    ],
)
def test_subset_order_by_may_use_every_column_the_role_can_read(
    shape: str, role: str, order_by: str, forwarded: str
) -> None:
    pairs = [("table", shape), ("offset", "-1"), ("subset__limit", "5")]
    request = planned([*pairs, ("subset__order_by", order_by)], role=role)
    assert dict(request.query)["subset__order_by"] == forwarded


@pytest.mark.parametrize(("shape", "column"), [("tasks", "salary"), ("projects", "budget")])
def test_subset_order_by_a_column_the_role_cannot_read_is_column_not_allowed(
    shape: str, column: str
) -> None:
    pairs = [("table", shape), ("offset", "-1"), ("subset__order_by", f"id, {column} DESC")]
    refused = refusal(pairs, role="member")
    assert refused.code is Code.COLUMN_NOT_ALLOWED
    assert repr(column) in refused.message


def test_post_body_order_by_is_held_to_the_same_readable_columns() -> None:
    base = parse_shape_query([("table", "tasks"), ("offset", "-1")])
    member = make_identity(role="member")
    body = {"order_by": "title DESC", "limit": 10}
    query = dataclasses.replace(base, subset=parse_subset_body(body))
    request = plan_upstream_request(query, member, RULES)
    assert dict(request.query)["subset__order_by"] == "title DESC"
    hidden = dataclasses.replace(base, subset=parse_subset_body({"order_by": "salary"}))
    with pytest.raises(Refusal) as caught:
        plan_upstream_request(hidden, member, RULES)
    assert caught.value.code is Code.COLUMN_NOT_ALLOWED


def test_subset_where_stays_limited_to_client_where_columns() -> None:
    pairs = [("table", "tasks"), ("offset", "-1"), ("subset__where", "title = 'x'")]
    assert refusal(pairs, role="admin").code is Code.INVALID_WHERE
    pairs = [("table", "projects"), ("offset", "-1"), ("subset__where", "name = 'x'")]
    assert refusal(pairs).code is Code.WHERE_NOT_ALLOWED


def test_subset_where_on_tenant_column_is_refused() -> None:
    pairs = [("table", "tasks"), ("offset", "-1"), ("subset__where", "tenant_id <> 'x'")]
    assert refusal(pairs).code is Code.INVALID_WHERE


ROUTED = make_rules(
    """\
    version: 1
    roles: [member]
    upstreams:
      eu: {url: "http://eu.internal:3000", secret: "${EU_SECRET}"}
    routing:
      claim: region
      tenants: {acme-eu: eu}
    shapes:
      things:
        table: things
        where: "tenant_id = :tenant"
        allow: [member]
    """,
    env={"EU_SECRET": "eu-secret"},
)


def test_pinned_tenant_is_routed_to_its_upstream_over_the_claim() -> None:
    pairs = [("table", "things"), ("offset", "-1")]
    request = planned(pairs, ROUTED, tenant="acme-eu", claims={"region": "default"})
    assert request.upstream.name == "eu"
    assert request.url().query["secret"] == "eu-secret"


def test_region_claim_picks_the_upstream_and_absent_claim_means_default() -> None:
    pairs = [("table", "things"), ("offset", "-1")]
    assert planned(pairs, ROUTED, claims={"region": "eu"}).upstream.name == "eu"
    assert planned(pairs, ROUTED).upstream.name == "default"


def test_region_claim_naming_no_upstream_is_refused_not_sent_to_default() -> None:
    pairs = [("table", "things"), ("offset", "-1")]
    assert refusal(pairs, ROUTED, claims={"region": "us"}).code is Code.UPSTREAM_MISCONFIGURED


@pytest.mark.parametrize(
    ("template", "tenant", "schema"),
    [
        ("{tenant}_schema.docs", "information", "information_schema"),
        ("{tenant}_catalog.docs", "pg", "pg_catalog"),
        ("{tenant}_toast.docs", "pg", "pg_toast"),
        ("{tenant}lic.docs", "pub", "public"),
        ("x{tenant}.docs", "-temp-1", "x_temp_1"),  # not shared: allowed
    ],
)
def test_a_tenant_id_that_would_name_a_shared_schema_is_refused(
    template: str, tenant: str, schema: str
) -> None:
    rules = make_rules(
        f"""\
        version: 1
        roles: [member]
        shapes:
          docs:
            table: "{template}"
            allow: [member]
        """
    )
    query = [("table", "docs"), ("offset", "-1")]
    if not schema.startswith("x"):
        refused = refusal(query, rules, tenant=tenant)
        assert refused.code is Code.INVALID_TENANT
        assert f"would name the shared schema {schema!r}" in refused.message
    else:
        assert planned(query, rules, tenant=tenant).table == f"{schema}.docs"


def test_a_fixed_shared_schema_with_a_table_per_tenant_is_served() -> None:
    """`public.docs_{tenant}`: the operator chose the schema; the tenant only names a table."""
    rules = make_rules(
        """\
        version: 1
        roles: [member]
        shapes:
          docs:
            table: "public.docs_{tenant}"
            allow: [member]
        """
    )
    request = planned([("table", "docs"), ("offset", "-1")], rules, tenant="public")
    assert request.table == "public.docs_public"


@pytest.mark.parametrize("handle", ["1-2", "a:b", "x.y_z~", "a&secret=x", "é", "a b", "%41"])
def test_the_position_is_percent_encoded_like_every_other_pair(handle: str) -> None:
    """The upstream target is the query percent-encoded whole, a position that did not come
    through `parse_shape_query` (and its alphabet checks) included."""
    query = ShapeQuery(shape="tasks", offset="5_0", handle=handle, cursor="7", live=True)
    request = plan_upstream_request(query, make_identity(), RULES)
    encoded = "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in request.query)
    assert request.target == encoded
