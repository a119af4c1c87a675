"""Rules loading: the shipped file is clean, and each broken file reports PATH:LINE: key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.rules.load import RulesError, load_rules, parse_rules
from tests.factories import DEFAULT_UPSTREAM, SHIPPED_RULES, make_rules

GOOD = """\
version: 1
roles: [admin, member]
shapes:
  things:
    table: public.things
    where: "tenant_id = :tenant"
    allow: [admin, member]
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(
            textwrap.dedent(text), path="r.yaml", env=env or {}, default_upstream=DEFAULT_UPSTREAM
        )
    return [str(p) for p in caught.value.problems]


def test_shipped_rules_load_and_cover_every_feature() -> None:
    rules = load_rules(SHIPPED_RULES, env={}, default_upstream=DEFAULT_UPSTREAM)
    shapes = rules.shapes
    assert shapes["countries"].public
    assert shapes["projects"].grants["member"].columns is not None
    assert shapes["tasks"].grants["member"].where != shapes["tasks"].grants["admin"].where
    assert shapes["tasks"].client_where
    assert shapes["drafts"].grants["member"].where is not None
    assert "user" in shapes["drafts"].grants["member"].where.bindings
    assert shapes["documents"].per_tenant_table
    assert rules.digest


def test_allow_star_grants_every_role_and_list_grants_those_listed() -> None:
    rules = make_rules()
    assert set(rules.shapes["drafts"].grants) == {"admin", "manager", "member"}
    assert set(rules.shapes["org_notes"].grants) == {"admin"}


def test_env_variables_are_expanded_after_parsing() -> None:
    rules = make_rules(
        GOOD + "upstreams:\n  eu: {url: '${EU_URL}', secret: '${EU_SECRET}'}\n",
        env={"EU_URL": "http://eu:3000", "EU_SECRET": "a: b\nc: d"},
    )
    assert rules.upstreams["eu"].url == "http://eu:3000"
    assert rules.upstreams["eu"].secret == "a: b\nc: d"  # a value, never YAML structure


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("version: 1", "version: 2"), "r.yaml:1: version: must be 1"),
        (GOOD + "colour: blue\n", "r.yaml:8: colour: unknown key; accepted: version, identity"),
        (GOOD.replace("    where:", "    wher:"), "r.yaml:6: shapes.things.wher: unknown key"),
        (GOOD.replace(":tenant", ":tenat"), "r.yaml:6: shapes.things.where: unknown placeholder"),
        (
            GOOD.replace("tenant_id = :tenant", "tenant_id = :tenant)"),
            "r.yaml:6: shapes.things.where: syntax error",
        ),
        (
            GOOD.replace("allow: [admin, member]", "allow: [admin, owner]"),
            "r.yaml:7: shapes.things.allow: role 'owner' is not in roles",
        ),
        (
            GOOD.replace('    where: "tenant_id = :tenant"\n', ""),
            "r.yaml:4: shapes.things: role 'admin', 'member' would read public.things across "
            "every tenant: it has no where",
        ),
        (
            GOOD.replace("tenant_id = :tenant", "tenant_id = :tenant OR true"),
            "r.yaml:6: shapes.things.where: role 'admin', 'member': no top-level AND term pins "
            "the caller (:tenant appears only under OR or NOT",
        ),
        (
            GOOD.replace("    allow: [admin, member]\n", ""),
            "r.yaml:4: shapes.things: needs `allow`",
        ),
        (
            GOOD.replace("public.things", "public.things.x"),
            "r.yaml:5: shapes.things.table: 'public.things.x' has more than one dot",
        ),
        (
            GOOD.replace("public.things", "t_{org}.things"),
            "r.yaml:5: shapes.things.table: {org} is not a placeholder",
        ),
        (GOOD + '    where: "user_id = :user"\n', "r.yaml:8: shapes.things.where: duplicate key"),
        (
            GOOD + "upstreams:\n  eu: {url: '${NOPE}'}\n",
            "r.yaml:9: upstreams.eu.url: environment variable NOPE is not set",
        ),
        (
            GOOD + "upstreams:\n  eu: {url: 'ftp://x'}\n",
            "r.yaml:9: upstreams.eu.url: 'ftp://x' is not an http(s) URL",
        ),
        (
            GOOD + "routing: {tenants: {acme: moon}}\n",
            "r.yaml:8: routing.tenants.acme: no upstream named 'moon'",
        ),
        (
            GOOD + "limits: {default: {requests_per_minute: 0}}\n",
            "r.yaml:8: limits.default.requests_per_minute: must be a whole number of at least 1",
        ),
        (GOOD + "limits: {default: {rpm: 5}}\n", "r.yaml:8: limits.default.rpm: unknown key"),
        (
            GOOD.replace("    allow: [admin, member]\n", "    public: true\n    allow: [admin]\n"),
            "r.yaml:8: shapes.things.allow: a public shape is open to every role",
        ),
        (
            GOOD.replace("allow: [admin, member]", "allow: {member: {where: 'true'}}"),
            "r.yaml:7: shapes.things.allow.member.where: role 'member': no top-level AND term",
        ),
        (
            GOOD.replace(
                "    allow: [admin, member]\n",
                "    client_where: [salary]\n    columns: [id]\n    allow: [admin]\n",
            ),
            "r.yaml:7: shapes.things.client_where: salary not in the columns admin may read",
        ),
        (
            GOOD.replace("roles: [admin, member]", "roles: []"),
            "r.yaml:2: roles: must list at least one role",
        ),
        ("version: 1\nroles: [a]\nshapes: {x: [1]}\n", "r.yaml:3: shapes.x: must be a mapping"),
        (
            GOOD + "    local_ttl: 24 hours\n",
            "r.yaml:8: shapes.things.local_ttl: '24 hours' is not a duration like 30m, 24h or 7d",
        ),
        (GOOD + "    local_ttl: 86400\n", "r.yaml:8: shapes.things.local_ttl: 86400 is not"),
        (GOOD + "    local_ttl: 0h\n", "r.yaml:8: shapes.things.local_ttl: '0h' is not"),
        (GOOD + "    local_ttl: 400d\n", "r.yaml:8: shapes.things.local_ttl: '400d' is not"),
        ("version: 1\n  bad: indent\n", "r.yaml:2: (yaml)"),
        ("", "r.yaml:1: (file): must hold exactly one YAML document"),
    ],
)
def test_each_broken_rules_file_reports_its_line_and_key(text: str, expected: str) -> None:
    found = problems(text)
    assert any(p.startswith(expected) or expected in p for p in found), found


def test_a_yaml_syntax_error_keeps_its_line_column_and_a_caret_under_the_fault() -> None:
    text = "version: 1\nroles: [a]\nshapes:\n  x:\n    table: t\n    where: a: b\n"
    (found,) = problems(text)
    assert found.splitlines() == [
        "r.yaml:6: (yaml): mapping values are not allowed here (at column 13)",
        "        where: a: b",
        "                ^",
    ]


def test_a_yaml_error_inside_a_construct_says_where_the_construct_starts() -> None:
    (found,) = problems("version: 1\nroles: [a, b\nshapes: {}\n")
    first, source, caret = found.splitlines()
    assert first == (
        "r.yaml:3: (yaml): expected ',' or ']', but got ':' (at column 7), "
        "while parsing a flow sequence that starts at line 2"
    )
    assert caret.index("^") == source.index(":")


@pytest.mark.parametrize(
    ("ttl", "seconds"), [("45s", 45), ("30m", 1800), ("24h", 86400), ("7d", 604800)]
)
def test_local_ttl_loads_as_seconds(ttl: str, seconds: int) -> None:
    rules = make_rules(GOOD + f"    local_ttl: {ttl}\n")
    assert rules.shapes["things"].local_ttl == seconds
    assert make_rules(GOOD).shapes["things"].local_ttl is None


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("version: 1", "version: 3") + "extra: 1\n"
    found = problems(text.replace(":tenant", ":tenat"))
    assert len(found) == 3


def test_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot be read"):
        load_rules(tmp_path / "nope.yaml", env={}, default_upstream=DEFAULT_UPSTREAM)


def test_unscoped_true_allows_a_deliberately_shared_table() -> None:
    text = GOOD.replace('    where: "tenant_id = :tenant"\n', "    unscoped: true\n")
    assert make_rules(text).shapes["things"].grants["admin"].where is None


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("tenant_id IN (:tenant, 'globex')", "lists values other than :tenant and :user"),
        (":tenant = :tenant", "compares placeholders, not a column"),
        ("tenant_id = 'acme'", "no term compares a column with :tenant or :user"),
        ("tenant_id = :tenant OR true", "appears only under OR or NOT"),
        ("NOT (tenant_id <> :tenant)", "appears only under OR or NOT"),
        ("tenant_id::text = :tenant", "compared with an expression, not a plain column"),
        ("tenant_id = :tenant AND id IN (SELECT id FROM t)", "a sub-select (SELECT ...)"),
        ("lower(tenant_id) = :tenant", "a function call is not supported"),
        ("tenant_id = :tenant::text", "a cast on a parameter is not supported"),
    ],
)
def test_a_role_where_that_does_not_pin_the_caller_does_not_load(where: str, says: str) -> None:
    text = GOOD.replace(
        "    allow: [admin, member]\n",
        f'    allow:\n      admin: {{}}\n      member:\n        where: "{where}"\n',
    )
    (found,) = problems(text)
    assert found.startswith("r.yaml:10: shapes.things.allow.member.where: ")
    assert says in found


def test_check_names_the_missing_term_for_the_role() -> None:
    text = GOOD.replace("tenant_id = :tenant", "tenant_id = :tenant OR true")
    (found,) = problems(text)
    assert "role 'admin', 'member': no top-level AND term pins the caller" in found
    assert "add `tenant_id = :tenant` (or `<column> = :user`) as a top-level AND term" in found


@pytest.mark.parametrize(
    ("where", "scope"),
    [
        ("tenant_id = :tenant", ""),
        (":user = owner_id AND archived = false", "    scope: user\n"),
        ("tenant_id IN (:tenant, :user) AND NOT (status = 'deleted' OR status IS NULL)",
         "    scope: user\n"),
        ("(status = 'a' OR status = 'b') AND tenant_id = :tenant", ""),
        ("NOT (tenant_id <> :tenant) AND owner = :user", ""),  # the tenant pinned, once pushed
    ],
)  # fmt: skip
def test_a_role_where_pinned_by_a_top_level_term_loads(where: str, scope: str) -> None:
    rules = make_rules(GOOD.replace("tenant_id = :tenant", where) + scope)
    assert rules.shapes["things"].grants["member"].where is not None
    assert rules.shapes["things"].scope == (scope.split(":")[1].strip() if scope else "tenant")


@pytest.mark.parametrize(
    "where",
    [
        "owner = :user",
        ":user = owner_id AND archived = false",
        "tenant_id IN (:tenant, :user)",  # a tenant_id equal to the user id: still the user's
        "owner = :user AND (tenant_id = :tenant OR shared)",
    ],
)
def test_a_where_that_pins_the_user_but_not_the_tenant_loads_only_with_scope_user(
    where: str,
) -> None:
    """Pinning the user alone follows the user across tenants: rows of a tenant they were
    removed from stay readable with another tenant's token. Said out loud, it loads."""
    text = GOOD.replace("tenant_id = :tenant", where)
    (found,) = problems(text)
    assert found.startswith("r.yaml:6: shapes.things.where: role 'admin', 'member': the where pins")
    assert "pins :user but not :tenant" in found
    assert "say `scope: user` if these rows belong to the person" in found
    assert "follow the user across tenants" in found
    assert make_rules(text + "    scope: user\n").shapes["things"].scope == "user"


def test_a_role_override_that_pins_only_the_user_is_named_on_its_own_line() -> None:
    text = GOOD.replace(
        "    allow: [admin, member]\n",
        '    allow:\n      admin: {}\n      member:\n        where: "owner = :user"\n',
    )
    (found,) = problems(text)
    assert found.startswith("r.yaml:10: shapes.things.allow.member.where: role 'member': ")


def test_a_per_tenant_table_needs_no_scope_for_a_user_where() -> None:
    text = GOOD.replace("public.things", "'tenant_{tenant}.things'").replace(
        "tenant_id = :tenant", "owner = :user"
    )
    assert make_rules(text).shapes["things"].scope == "tenant"


def test_scope_accepts_only_tenant_or_user() -> None:
    (found,) = problems(GOOD + "    scope: everyone\n")
    assert found == "r.yaml:8: shapes.things.scope: must be tenant or user, not 'everyone'"


@pytest.mark.parametrize(
    ("table", "what"),
    [
        ("{tenant}.docs", "in the schema"),
        ('"{tenant}".docs', "in the schema"),
        ("app.{tenant}", "in the table name"),
        ("{tenant}", "in the table name"),
    ],
)
def test_a_table_template_without_fixed_text_beside_tenant_does_not_load(
    table: str, what: str
) -> None:
    """`{tenant}.docs` would map tenant `public` to `public.docs`: a shared schema."""
    text = GOOD.replace("public.things", f"'{table}'")
    (found,) = problems(text.replace('    where: "tenant_id = :tenant"\n', ""))
    assert found.startswith("r.yaml:5: shapes.things.table: {tenant} needs fixed text beside it")
    assert what in found
    assert "tenant `public` would read public's" in found


@pytest.mark.parametrize("table", ["tenant_{tenant}.documents", "{tenant}_data.docs",
                                   "app.docs_{tenant}", '"T_{tenant}".docs'])  # fmt: skip
def test_a_table_template_with_fixed_text_beside_tenant_loads(table: str) -> None:
    text = GOOD.replace("public.things", f"'{table}'")
    text = text.replace('    where: "tenant_id = :tenant"\n', "")
    assert make_rules(text).shapes["things"].per_tenant_table


def test_a_template_whose_schema_always_starts_with_pg_does_not_load() -> None:
    text = GOOD.replace("public.things", "pg_{tenant}.docs")
    (found,) = problems(text)
    assert "schema names starting with pg_ are PostgreSQL's own" in found
