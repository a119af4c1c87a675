"""Two rules compared by effect: each change is a widening, a narrowing or a limits change."""

from __future__ import annotations

from gateway.rulesops.diff import Change, Kind, diff_rules, widened
from tests.factories import make_rules

BASE = """\
version: 1
identity: {user: sub, tenant: tid, role: role, memberships: tenants, plan: plan}
roles: [admin, member]
upstreams: {eu: {url: "http://eu.example"}}
routing: {tenants: {acme: eu}}
shapes:
  countries: {table: public.countries, public: true}
  tasks:
    table: public.tasks
    where: "tenant_id = :tenant"
    client_where: [status]
    allow:
      admin: {}
      member:
        where: "tenant_id = :tenant AND assigned_to = :user"
        columns: [id, tenant_id, status, assigned_to]
  notes:
    table: public.notes
    where: "tenant_id = :tenant"
    allow: [admin]
limits:
  default: {requests_per_minute: 600}
"""


def diff(new: str, old: str = BASE) -> list[Change]:
    return diff_rules(make_rules(old), make_rules(new))


def edit(before: str, after: str) -> str:
    assert before in BASE
    return BASE.replace(before, after)


MEMBER_WHERE = 'where: "tenant_id = :tenant AND assigned_to = :user"'


def test_identical_rules_have_no_changes() -> None:
    assert diff(BASE) == []


def test_spelling_spacing_and_term_order_of_a_where_are_no_change() -> None:
    assert diff(edit(MEMBER_WHERE, 'where: "ASSIGNED_TO=:user and (tenant_id = :tenant)"')) == []


def test_a_lost_where_term_is_a_widening_naming_the_term_and_the_role() -> None:
    (change,) = diff(edit(MEMBER_WHERE, 'where: "tenant_id = :tenant"'))
    assert change == Change(
        Kind.WIDENING,
        "tasks",
        "where",
        "where lost assigned_to = :user",
        roles=("member",),
        removed=("assigned_to = :user",),
    )


def test_a_gained_where_term_is_a_narrowing() -> None:
    (change,) = diff(edit(MEMBER_WHERE, MEMBER_WHERE[:-1] + " AND status <> 'secret'\""))
    assert change.kind is Kind.NARROWING
    assert change.added == ("status <> 'secret'",)


def test_a_changed_where_term_counts_as_a_widening_with_both_sides() -> None:
    (change,) = diff(edit(MEMBER_WHERE, 'where: "tenant_id = :tenant AND owner = :user"'))
    assert change.kind is Kind.WIDENING
    assert (change.removed, change.added) == (("assigned_to = :user",), ("owner = :user",))


def test_columns_added_widen_and_columns_removed_narrow() -> None:
    changes = diff(edit("[id, tenant_id, status, assigned_to]", "[id, tenant_id, status, salary]"))
    assert [(c.kind, c.message) for c in changes] == [
        (Kind.WIDENING, "columns added: salary"),
        (Kind.NARROWING, "columns removed: assigned_to"),
    ]


def test_dropping_a_column_allow_list_is_a_widening_to_every_column() -> None:
    (change,) = diff(edit("        columns: [id, tenant_id, status, assigned_to]\n", ""))
    assert change.kind is Kind.WIDENING
    assert change.message == "columns: every column (was id, tenant_id, status, assigned_to)"


def test_a_role_newly_allowed_on_a_shape_is_a_widening_showing_what_it_reads() -> None:
    (change,) = diff(edit("allow: [admin]", "allow: [admin, member]"))
    assert change == Change(
        Kind.WIDENING,
        "notes",
        "access",
        "newly allowed: where tenant_id = :tenant; columns (all)",
        roles=("member",),
    )


def test_a_role_no_longer_allowed_is_a_narrowing() -> None:
    changes = diff(edit("      admin: {}\n", ""))
    assert [(c.kind, c.subject, c.roles, c.message) for c in changes] == [
        (Kind.NARROWING, "tasks", ("admin",), "now refused")
    ]


def test_a_new_role_is_a_widening_and_so_is_each_shape_it_can_read() -> None:
    changes = diff(edit("roles: [admin, member]", "roles: [admin, member, auditor]"))
    assert [(c.kind, c.subject, c.roles) for c in changes] == [
        (Kind.WIDENING, "roles", ()),
        (Kind.WIDENING, "countries", ("auditor",)),
    ]
    assert changes[0].added == ("auditor",)


def test_one_change_for_several_roles_is_reported_once_listing_them() -> None:
    changes = diff(edit("public.countries, public: true", "public.countries, allow: '*',"
                        " where: \"region = :claims.region\", unscoped: true"))  # fmt: skip
    where = [c for c in changes if c.aspect == "where"]
    assert [(c.kind, c.roles) for c in where] == [(Kind.NARROWING, ("admin", "member"))]
    assert any(c.aspect == "public" and c.kind is Kind.NARROWING for c in changes)


def test_a_changed_table_is_a_widening_because_the_data_comes_from_elsewhere() -> None:
    (change,) = diff(edit("table: public.tasks", "table: archive.tasks"))
    assert (change.kind, change.aspect) == (Kind.WIDENING, "table")
    assert change.message == "table public.tasks -> archive.tasks (the data comes from elsewhere)"


def test_the_same_table_spelled_differently_is_no_change() -> None:
    assert diff(edit("table: public.tasks", "table: TASKS")) == []


def test_client_where_columns_added_widen_and_removed_narrow() -> None:
    (added,) = diff(edit("client_where: [status]", "client_where: [status, tenant_id]"))
    assert (added.kind, added.added) == (Kind.WIDENING, ("tenant_id",))
    (removed,) = diff(edit("    client_where: [status]\n", ""))
    assert (removed.kind, removed.message) == (Kind.NARROWING, "client where no longer accepted")


def test_an_upstream_url_or_routing_change_is_a_widening() -> None:
    (url,) = diff(edit("http://eu.example", "http://elsewhere.example"))
    assert (url.kind, url.subject) == (Kind.WIDENING, "upstreams.eu")
    (pin,) = diff(edit("routing: {tenants: {acme: eu}}", "routing: {tenants: {}}"))
    assert (pin.kind, pin.subject) == (Kind.WIDENING, "routing.tenants.acme")
    assert pin.message == "eu -> (none) (data goes elsewhere)"


def test_identity_claims_read_differently_widen_and_dropping_memberships_narrows() -> None:
    (tenant,) = diff(edit("tenant: tid", "tenant: org"))
    assert (tenant.kind, tenant.subject) == (Kind.WIDENING, "identity.tenant")
    (memberships,) = diff(edit(" memberships: tenants,", ""))
    assert (memberships.kind, memberships.subject) == (Kind.NARROWING, "identity.memberships")


def test_limits_are_their_own_kind_and_never_a_widening() -> None:
    changes = diff(edit("requests_per_minute: 600}", "requests_per_minute: 6000}\n  plans: "
                        "{free: {requests_per_minute: 60}}"))  # fmt: skip
    assert [(c.kind, c.subject, c.message) for c in changes] == [
        (Kind.LIMITS, "limits.default.requests_per_minute", "600 -> 6000"),
        (
            Kind.LIMITS,
            "limits.plans.free",
            "plan added: requests_per_minute 60, tenant_requests_per_minute 6000, "
            "live_connections_per_user 10",
        ),
    ]
    assert not widened(changes)


def test_widenings_come_first_whatever_the_order_of_shapes() -> None:
    new = edit("allow: [admin]", "allow: [admin, member]")  # notes: widening
    new = new.replace("public: true", "allow: [admin], unscoped: true")
    kinds = [change.kind for change in diff(new)]
    assert kinds == sorted(kinds, key=[Kind.WIDENING, Kind.NARROWING, Kind.LIMITS].index)
    assert kinds[0] is Kind.WIDENING
    assert Kind.NARROWING in kinds
