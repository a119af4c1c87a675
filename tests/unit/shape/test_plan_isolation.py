"""Isolation judged by rows: planned requests executed in the real PostgreSQL.

Each planned table, where and bound params run as a real query against tables holding rows of
several tenants and users (hostile tenant and user ids among them). A role must see exactly its
rows; claim values, however hostile, must only ever act as parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import RawCursor, sql

from gateway.errors import Refusal
from gateway.rules.model import Rules
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import UpstreamRequest, plan_upstream_request
from tests.factories import make_identity, make_rules

pytestmark = pytest.mark.postgres

HOSTILE = [
    "' OR '1'='1",
    "$1",
    "acme'; DROP TABLE tasks; --",
    "ácmé-ünïcode",
    "acme\\",
    '"acme"',
    "acme) OR (1=1",
]
TENANTS = ["acme", "globex", *HOSTILE]
USERS = ["alice", "bob", "carol' OR 'x'='x", "$2"]
STATUSES = ["open", "done", "blocked"]


@dataclass(frozen=True)
class Task:
    id: int
    tenant_id: str
    project_id: int
    status: str
    assigned_to: str


TASKS = [
    Task(i, tenant, i % 3, STATUSES[i % 3], USERS[i % len(USERS)])
    for i, tenant in enumerate(TENANTS * 6)
]


@dataclass(frozen=True)
class World:
    schema: str
    rules: Rules


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[World]:
    schema = f"gw_iso_{uuid.uuid4().hex[:8]}"
    tenant_schemas = [f"{schema}_t_{t}" for t in ("acme", "globex", "acme_eu")]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.tasks (id int PRIMARY KEY, tenant_id text, project_id int, "
                "title text, status text, assigned_to text, salary int)"
            ).format(sql.Identifier(schema))
        )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {}.tasks VALUES (%s, %s, %s, %s, %s, %s, 100)").format(
                    sql.Identifier(schema)
                ),
                [
                    (t.id, t.tenant_id, t.project_id, f"task {t.id}", t.status, t.assigned_to)
                    for t in TASKS
                ],
            )
        for name in tenant_schemas:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE TABLE {}.documents (id int PRIMARY KEY, owner text)").format(
                    sql.Identifier(name)
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {}.documents VALUES (1, %s)").format(sql.Identifier(name)),
                [name],
            )
        rules = make_rules(
            f"""\
            version: 1
            roles: [admin, manager, member]
            shapes:
              tasks:
                table: {schema}.tasks
                where: "tenant_id = :tenant"
                client_where: [status, project_id]
                allow:
                  admin: {{}}
                  member:
                    where: "tenant_id = :tenant AND assigned_to = :user"
              documents:
                table: "{schema}_t_{{tenant}}.documents"
                allow: [admin, member]
            """
        )
        yield World(schema, rules)
        for name in [schema, *tenant_schemas]:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def run(conn: psycopg.Connection[tuple[object, ...]], request: UpstreamRequest) -> set[object]:
    """Execute the planned shape the way Electric would: table, where, params as parameters."""
    where = f" WHERE {request.where}" if request.where else ""
    cursor = RawCursor(conn)
    cursor.execute(f"SELECT id FROM {request.table}{where}", list(request.params))  # noqa: S608
    return {row[0] for row in cursor.fetchall()}


def plan_for(
    world: World, shape: str, extra: list[tuple[str, str]] | None = None, **who: str
) -> UpstreamRequest:
    query = parse_shape_query([("table", shape), ("offset", "-1"), *(extra or [])])
    return plan_upstream_request(query, make_identity(**who), world.rules)


@pytest.mark.parametrize("tenant", TENANTS)
def test_admin_sees_exactly_its_tenants_rows_whatever_the_tenant_id(
    world: World, pg: psycopg.Connection[tuple[object, ...]], tenant: str
) -> None:
    rows = run(pg, plan_for(world, "tasks", tenant=tenant, role="admin"))
    assert rows == {t.id for t in TASKS if t.tenant_id == tenant}
    assert rows  # every tenant has rows, so an empty result would prove nothing


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("tenant", ["acme", "' OR '1'='1"])
def test_member_sees_only_rows_assigned_to_it_in_its_tenant(
    world: World, pg: psycopg.Connection[tuple[object, ...]], tenant: str, user: str
) -> None:
    rows = run(pg, plan_for(world, "tasks", tenant=tenant, user=user, role="member"))
    assert rows == {t.id for t in TASKS if t.tenant_id == tenant and t.assigned_to == user}


def test_client_where_narrows_but_never_widens(
    world: World, pg: psycopg.Connection[tuple[object, ...]]
) -> None:
    extra = [
        ("where", "status = $1 OR project_id >= $2"),
        ("params[1]", "open"),
        ("params[2]", "0"),
    ]
    rows = run(pg, plan_for(world, "tasks", extra, role="admin"))
    assert rows == {t.id for t in TASKS if t.tenant_id == "acme"}


def test_client_param_values_are_parameters_too(
    world: World, pg: psycopg.Connection[tuple[object, ...]]
) -> None:
    extra = [("where", "status = $1"), ("params[1]", "open' OR '1'='1")]
    assert run(pg, plan_for(world, "tasks", extra, role="admin")) == set()


@pytest.mark.parametrize(("tenant", "schema_suffix"), [("acme", "acme"), ("acme-eu", "acme_eu")])
def test_schema_per_tenant_reads_only_that_tenants_schema(
    world: World, pg: psycopg.Connection[tuple[object, ...]], tenant: str, schema_suffix: str
) -> None:
    request = plan_for(world, "documents", tenant=tenant, role="member")
    assert request.table == f"{world.schema}_t_{schema_suffix}.documents"
    cursor = pg.execute(f"SELECT owner FROM {request.table}")  # noqa: S608
    assert cursor.fetchall() == [(f"{world.schema}_t_{schema_suffix}",)]


WHERE_ATOMS = st.sampled_from(
    [
        "status = 'open'",
        "status <> 'done'",
        "project_id IN (0, 2)",
        "project_id BETWEEN 1 AND 2",
        "status IS NULL",
        "status LIKE 'o%'",
        "true",
        "1 = 1",
        "status = $1",
        "tenant_id = 'globex'",  # refused: not a client_where column
        "assigned_to IS NOT NULL",  # refused
    ]
)


@st.composite
def client_wheres(draw: st.DrawFn) -> str:
    atoms = draw(st.lists(WHERE_ATOMS, min_size=1, max_size=4))
    joiners = draw(st.lists(st.sampled_from([" AND ", " OR "]), min_size=len(atoms) - 1,
                            max_size=len(atoms) - 1))  # fmt: skip
    text = atoms[0]
    for joiner, atom in zip(joiners, atoms[1:], strict=True):
        text = f"{text}{joiner}{atom}"
    return f"NOT ({text})" if draw(st.booleans()) else text


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=client_wheres(),
    param=st.sampled_from(["open", "done", "' OR '1'='1", "$1"]),
    tenant=st.sampled_from(TENANTS),
    user=st.sampled_from(USERS),
    role=st.sampled_from(["admin", "member"]),
)
def test_no_client_where_returns_a_row_the_rule_does_not_allow(
    world: World,
    pg: psycopg.Connection[tuple[object, ...]],
    where: str,
    param: str,
    tenant: str,
    user: str,
    role: str,
) -> None:
    extra = [("where", where)] + ([("params[1]", param)] if "$1" in where else [])
    try:
        request = plan_for(world, "tasks", extra, tenant=tenant, user=user, role=role)
    except Refusal:
        return
    allowed = {
        t.id for t in TASKS if t.tenant_id == tenant and (role == "admin" or t.assigned_to == user)
    }
    assert run(pg, request) <= allowed
