"""Column names and client_where types in the rules (gateway/rules/columns.py)."""

from __future__ import annotations

import textwrap

import pytest

from gateway.errors import Code, Refusal
from gateway.rules.load import RulesError, parse_rules
from gateway.rules.model import Rules
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import plan_upstream_request
from tests.factories import DEFAULT_UPSTREAM, make_identity

RULES = """\
version: 1
identity: {{user: sub, tenant: tid, role: role}}
roles: [admin]
shapes:
  things:
    table: public.things
    where: "tenant_id = :tenant"
    client_where: {client_where}
    allow: [admin]
"""


def load(client_where: str) -> Rules:
    text = RULES.format(client_where=client_where)
    return parse_rules(text, path="r.yaml", env={}, default_upstream=DEFAULT_UPSTREAM)


def problems(client_where: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load(client_where)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("client_where", ["['\"Status\"']", "{'\"Status\"': text}"])
def test_a_quoted_client_where_column_is_refused_with_how_to_write_it(client_where: str) -> None:
    # A client's where names the column `Status` as "Status"; the rule's `"Status"` (quotes
    # included) would never match it.
    assert problems(client_where) == [
        'r.yaml:8: shapes.things.client_where: "Status" is quoted: write the column name as '
        'the table has it, without quotes: Status (a client then writes "Status" in its where '
        "or columns)"
    ]


def test_a_quoted_columns_entry_is_refused_too() -> None:
    text = textwrap.dedent(RULES.format(client_where="[id]")).replace(
        "    allow:", "    columns: [id, tenant_id, '\"Title\"']\n    allow:"
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text, path="r.yaml", env={}, default_upstream=DEFAULT_UPSTREAM)
    assert [p.message for p in caught.value.problems] == [
        '"Title" is quoted: write the column name as the table has it, without quotes: Title '
        '(a client then writes "Title" in its where or columns)'
    ]


def test_a_column_with_capitals_is_reached_by_its_quoted_name_in_a_where() -> None:
    rules = load("[Status]")
    identity = make_identity(role="admin")
    quoted = [("table", "things"), ("offset", "-1"), ("where", "\"Status\" = 'open'")]
    planned = plan_upstream_request(parse_shape_query(quoted), identity, rules)
    assert planned.where == "(tenant_id = $1) AND (\"Status\" = 'open')"
    bare = [("table", "things"), ("offset", "-1"), ("where", "Status = 'open'")]
    with pytest.raises(Refusal) as refused:
        plan_upstream_request(parse_shape_query(bare), identity, rules)
    assert refused.value.code is Code.INVALID_WHERE
    assert 'write "Status" in double quotes' in refused.value.message


def test_client_where_as_a_map_declares_each_columns_type_as_postgresql_names_it() -> None:
    rules = load(
        "{due: timestamp with time zone, n: integer, code: varchar(20), done: boolean, "
        "day: date, score: double precision}"
    )
    shape = rules.shapes["things"]
    assert shape.client_where == frozenset({"due", "n", "code", "done", "day", "score"})
    assert dict(shape.client_where_types) == {
        "due": "timestamptz",
        "n": "int4",
        "code": "varchar",
        "done": "bool",
        "day": "date",
        "score": "float8",
    }


@pytest.mark.parametrize("declared", ["jsonb", "int4[]", "mood", "not a type"])
def test_a_type_electrics_where_parser_does_not_know_does_not_load(declared: str) -> None:
    (problem,) = problems(f"{{x: '{declared}'}}")
    assert problem.startswith("r.yaml:8: shapes.things.client_where.x: ")
    assert "is not a type Electric's where parser knows; declare one of bool, date" in problem
