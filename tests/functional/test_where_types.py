"""Wheres real Electric refuses for their types never leave the gateway; what both versions
accept (IS [NOT] TRUE/FALSE, IS [NOT] DISTINCT FROM) reaches Electric and returns psql's rows.

Against each imitated version (electric_imitation/versions.py: what real 1.0.10 and 1.7.12 refused
with their own 400), and against a real Electric when one is at hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg
import pytest
from psycopg import sql

from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres, pytest.mark.across_electric_versions]

ADMIN = make_token(sub="root", tid="acme", role="admin")
ROWS = [  # id, tenant, t_ts, t_int, t_bool, t_date
    (1, "acme", "2024-03-01 10:00:00+00", 5, True, "2024-03-01"),
    (2, "acme", "2024-02-01 10:00:00+00", 7, False, "2024-02-01"),
    (3, "acme", None, None, None, None),
    (4, "globex", "2024-03-05 10:00:00+00", 5, True, "2024-03-05"),
]


@pytest.fixture
def table(electric_database_url: str) -> Iterator[str]:
    name = f"gw_types_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(electric_database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id int PRIMARY KEY, tenant_id text NOT NULL, "
                "t_ts timestamptz, t_int int4, t_bool bool, t_date date)"
            ).format(sql.Identifier(name))
        )
        for row in ROWS:
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s)").format(
                    sql.Identifier(name)
                ),
                row,
            )
    yield name
    with psycopg.connect(electric_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


async def typed_gateway(factory: GatewayFactory, electric: Electric, table: str) -> Gateway:
    rules = f"""\
version: 1
identity: {{user: sub, tenant: tid, role: role}}
roles: [admin]
shapes:
  events:
    table: public.{table}
    where: "tenant_id = :tenant"
    client_where: {{t_ts: timestamptz, t_int: int4, t_bool: bool, t_date: date}}
    allow: [admin]
"""
    return await factory(upstream=str(electric.url), rules=rules, electric_secret=ELECTRIC_SECRET)


REFUSED = [  # (where, what the gateway's message names, Electric's own 400, when it has one)
    ("t_ts > '2024-03-01'", "compared with column t_ts (timestamptz)",
     "At location 7: invalid syntax for type timestamptz: 2024-03-01"),
    ("t_ts BETWEEN '2024-03-01' AND '2024-04-01'", "'2024-03-01' compared with column t_ts",
     "At location 13: invalid syntax for type timestamptz: 2024-03-01"),
    ("'2024-03-01'::timestamp < t_ts", "cast to timestamp: '2024-03-01' is not a timestamp",
     'At location 0: could not cast value "2024-03-01" from text to timestamp'),
    ("t_ts::date = '2024-03-01'", "Electric has no cast from timestamptz to date",
     "At location 0: unknown cast from type timestamptz to type date"),
    ("t_ts::text LIKE '2024%'", "Electric has no cast from timestamptz to text",
     "At location 0: unknown cast from type timestamptz to type text"),
    ("t_bool = 'yes'", "'yes' is not a bool", "At location 9: invalid syntax for type bool: yes"),
    ("t_int", "column t_int is int4, not a boolean", "WHERE clause must return a boolean"),
]  # fmt: skip


async def electric_answer(electric: Electric, table: str, where: str) -> tuple[int, Any]:
    """What Electric itself says to `where` on the table, asked directly."""
    query = {"table": table, "offset": "-1", "where": where, "secret": ELECTRIC_SECRET}
    async with (
        aiohttp.ClientSession() as session,
        session.get(electric.url.with_path("/v1/shape").with_query(query)) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(("where", "named", "electric_says"), REFUSED)
async def test_a_where_electric_refuses_for_its_types_is_refused_by_the_gateway_first(
    gateway_factory: GatewayFactory,
    electric: Electric,
    table: str,
    where: str,
    named: str,
    electric_says: str,
) -> None:
    # 1.0.10 takes a non-boolean where (PostgreSQL then fails the snapshot after the headers);
    # every other refusal is Electric's own 400 on both versions.
    if where != "t_int" or not electric.target.version.startswith("1.0."):
        status, body = await electric_answer(electric, table, where)
        assert (status, body["errors"]["where"]) == (400, [electric_says])
    gateway = await typed_gateway(gateway_factory, electric, table)
    before = len(electric.state.requests)
    query = {"table": "events", "offset": "-1", "where": where}
    async with gateway.shape(query, token=ADMIN) as response:
        assert response.status == 400
        refusal = await response.json()
    assert refusal["error"] == "invalid_where"
    assert named in refusal["message"]
    assert len(electric.state.requests) == before  # never forwarded


async def test_a_parameter_electric_cannot_read_as_its_type_is_refused_by_the_gateway_first(
    gateway_factory: GatewayFactory, electric: Electric, table: str
) -> None:
    gateway = await typed_gateway(gateway_factory, electric, table)
    query = {"table": "events", "offset": "-1", "where": "t_ts > $1", "params[1]": "2024-03-01"}
    async with gateway.shape(query, token=ADMIN) as response:
        assert response.status == 400
        assert "params[1] '2024-03-01' is not a timestamptz" in (await response.json())["message"]
    assert not electric.state.requests


@pytest.mark.parametrize(
    ("where", "params", "expected"),
    [
        ("t_bool IS TRUE", {}, ["1"]),
        ("t_bool IS NOT TRUE", {}, ["2", "3"]),
        ("t_bool IS FALSE OR t_bool IS UNKNOWN", {}, ["2", "3"]),
        ("NOT (t_bool IS NOT FALSE)", {}, ["2"]),
        ("(t_int = 5) IS NOT TRUE", {}, ["2", "3"]),
        ("t_int IS DISTINCT FROM 5", {}, ["2", "3"]),
        ("t_int IS NOT DISTINCT FROM $1", {"params[1]": "7"}, ["2"]),
        ("NOT (t_int IS NOT DISTINCT FROM NULL)", {}, ["1", "2"]),
        ("t_ts > $1", {"params[1]": "2024-02-15 00:00:00Z"}, ["1"]),
        ("t_date BETWEEN '2024-01-01' AND '2024-02-15'", {}, ["2"]),
    ],
)
async def test_is_true_and_is_distinct_from_reach_electric_and_return_psqls_rows(
    gateway_factory: GatewayFactory,
    electric: Electric,
    electric_database_url: str,
    table: str,
    where: str,
    params: dict[str, str],
    expected: list[str],
) -> None:
    gateway = await typed_gateway(gateway_factory, electric, table)
    query = {"table": "events", "offset": "-1", "where": where, **params}
    async with gateway.shape(query, token=ADMIN) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    got = sorted(m["value"]["id"] for m in body if "key" in m)
    assert got == expected
    values = [params[f"params[{n}]"] for n in range(1, len(params) + 1)]
    with psycopg.connect(electric_database_url) as conn:
        psql = conn.execute(
            sql.SQL("SELECT id::text FROM {} WHERE tenant_id = 'acme' AND ({}) ORDER BY id").format(
                sql.Identifier(table),
                sql.SQL(where.replace("$1", "%s")),
            ),
            values,
        ).fetchall()
    assert got == [row[0] for row in psql]
