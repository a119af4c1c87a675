"""The rulesops tests' database: a schema with tasks of two tenants and a schema per tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from gateway.rules.model import Rules
from tests.factories import make_rules

TASKS = [  # alice is a user id in both tenants: a rule scoped by user alone leaks
    (1, "acme", 1, "open", "alice"),
    (2, "acme", 1, "done", "carol"),
    (3, "globex", 2, "open", "alice"),
    (4, "globex", 2, "open", "bob"),
]


@dataclass(frozen=True)
class World:
    url: str
    schema: str

    def rules(
        self,
        member_where: str,
        columns: str = "[id, tenant_id, project_id, status, assigned_to]",
        scope: str = "tenant",
    ) -> Rules:
        return make_rules(f"""\
            version: 1
            roles: [admin, member]
            shapes:
              tasks:
                table: {self.schema}.tasks
                scope: {scope}
                where: "tenant_id = :tenant"
                client_where: [status, project_id]
                allow:
                  admin: {{}}
                  member: {{where: "{member_where}", columns: {columns}}}
              documents:
                table: "{self.schema}_t_{{tenant}}.documents"
                allow: [admin, member]
            """)


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[World]:
    schema = f"gw_proof_{uuid.uuid4().hex[:8]}"
    tenant_schemas = [f"{schema}_t_acme", f"{schema}_t_globex"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        ident = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        conn.execute(sql.SQL("CREATE SEQUENCE {}.probe").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.tasks (id int PRIMARY KEY, tenant_id text, project_id int, "
                "status text, assigned_to text)"
            ).format(ident)
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                sql.SQL("INSERT INTO {}.tasks VALUES (%s, %s, %s, %s, %s)").format(ident), TASKS
            )
        for name, tenant in zip(tenant_schemas, ("acme", "globex"), strict=True):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE TABLE {}.documents (id int, owner text)").format(
                    sql.Identifier(name)
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {}.documents VALUES (1, %s)").format(sql.Identifier(name)),
                [tenant],
            )
        yield World(database_url, schema)
        for name in [schema, *tenant_schemas]:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
