"""The forwarded where form: Electric-safe spelling, same tree, same rows as the client's text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind
from pglast.keywords import (
    COL_NAME_KEYWORDS,
    RESERVED_KEYWORDS,
    TYPE_FUNC_NAME_KEYWORDS,
    UNRESERVED_KEYWORDS,
)
from psycopg import sql

from gateway.sql.emit import _canonical, _parse_back, emit_order_by, emit_where
from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.negation import push_negations
from gateway.sql.subset import check_subset
from tests.unit.sql.electric_where import electric_where_problem
from tests.unit.sql.strategies import ROWS, TABLE_SQL, conditions


def forwarded(text: str) -> str:
    node = parse_expression(text)
    check_subset(node)
    return emit_where(push_negations(node))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("status = 'open'", "status = 'open'"),
        ("a = 1 AND b = 2 OR c = 3", "((a = 1) AND (b = 2)) OR (c = 3)"),
        ("a = 1 AND (b = 2 OR c = 3)", "(a = 1) AND ((b = 2) OR (c = 3))"),
        ("NOT (status = 'done')", "status <> 'done'"),
        ("NOT (a = 1 OR b IS NULL)", "(a <> 1) AND (b IS NOT NULL)"),
        (
            "CAST(created_at AS timestamptz) > '2024-01-01T00:00:00Z'",
            "created_at::timestamptz > '2024-01-01T00:00:00Z'",
        ),
        ("project_id::integer = '5'::int", "project_id::int4 = '5'::int4"),
        ("CAST(-1 AS bigint) < x", "(-1)::int8 < x"),
        ("status != 'x'", "status <> 'x'"),
        ("x NOT IN (1, 2)", "x NOT IN (1, 2)"),
        ("x NOT BETWEEN -1 AND 2.5", "x NOT BETWEEN -1 AND 2.5"),
        ("s NOT ILIKE 'a%'", "s NOT ILIKE 'a%'"),
        ("s = E'it\\'s'", "s = 'it''s'"),
        ("s = 'back\\slash'", "s = 'back\\slash'"),
        (
            "x = 1.0e10 AND y = 99999999999999999999.0",
            "(x = 1.0e10) AND (y = 99999999999999999999.0)",
        ),
        ("archived", "archived"),
        ("NOT archived", "archived = false"),
        ("x IS NULL AND true", "(x IS NULL) AND (true)"),
        (
            '"Status" = 1 AND "order" = 2 AND "select" IS NULL',
            '("Status" = 1) AND ("order" = 2) AND ("select" IS NULL)',
        ),
        ("  status   =   $1  -- c", "status = $1"),
    ],
)
def test_where_is_forwarded_in_the_conservative_form(where: str, expected: str) -> None:
    assert forwarded(where) == expected
    assert electric_where_problem(expected) is None


def test_a_tree_the_form_cannot_hold_is_refused_by_the_round_trip() -> None:
    node = parse_expression("status::varchar(3) = 'abc'")  # modifiers are outside the subset
    with pytest.raises(ExpressionError, match="round trip"):
        emit_where(node)


@pytest.mark.parametrize(
    ("written", "meant"),
    [  # one leaf apart: the read-back comparison must see each difference
        ("a = 1", "b = 1"),
        ("a = 1", "a = 2"),
        ("a = 1", "a = '1'"),
        ("a = 1.5", "a = 1.25"),
        ("a = 'x'", "a = 'y'"),
        ("a = true", "a = false"),
        ("a = NULL", "a = 'NULL'"),
        ("a = $1", "a = $2"),
        ("a = 1", "a <> 1"),
        ("a LIKE 'x'", "a ILIKE 'x'"),
        ("a IN (1, 2)", "a NOT IN (1, 2)"),
        ("a IN (1, 2)", "a IN (2, 1)"),
        ("a BETWEEN 1 AND 2", "a NOT BETWEEN 1 AND 2"),
        ("a IS NULL", "a IS NOT NULL"),
        ("a IS TRUE", "a IS NOT TRUE"),
        ("a IS DISTINCT FROM 1", "a IS NOT DISTINCT FROM 1"),
        ("a::int4 = 1", "a::int8 = 1"),
        ("(a = 1) AND (b = 2)", "(a = 1) OR (b = 2)"),
        ("(a = 1) AND (b = 2)", "(b = 2) AND (a = 1)"),
        ('"A" = 1', "a = 1"),
    ],
)
def test_the_read_back_check_sees_every_difference_of_meaning(written: str, meant: str) -> None:
    assert _parse_back(written) == _canonical(parse_expression(written))
    assert _parse_back(written) != _canonical(parse_expression(meant))


def test_a_node_outside_the_subset_is_not_written() -> None:
    with pytest.raises(ExpressionError, match="cannot write"):
        emit_where(parse_expression("lower(status) = 'a'"))


def test_order_by_is_written_as_plain_columns_with_direction_and_nulls() -> None:
    stmt = parse_sql('SELECT FROM t ORDER BY "Status" DESC NULLS LAST, id ASC, "order", b')[0]
    items = stmt.stmt.sortClause  # type: ignore[union-attr]
    assert isinstance(items, tuple)
    assert emit_order_by(items) == '"Status" DESC NULLS LAST, id ASC, "order", b'


@settings(max_examples=400, deadline=None)
@given(where=conditions())
def test_every_accepted_where_is_forwarded_in_electrics_subset_and_stays_put(where: str) -> None:
    text = forwarded(where)
    assert electric_where_problem(text) is None, text
    assert forwarded(text) == text  # the form is a fixed point: forwarding twice changes nothing


@pytest.fixture(scope="module")
def table(database_url: str) -> Iterator[str]:
    name = f"gw_emit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL(TABLE_SQL).format(sql.Identifier(name)))
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s)").format(
                    sql.Identifier(name)
                ),
                ROWS,
            )
        yield name
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


def select_ids(pg: psycopg.Connection[tuple[object, ...]], table: str, where: str) -> set[object]:
    query = f"SELECT id FROM {table} WHERE {where}"  # noqa: S608
    return {row[0] for row in pg.execute(query).fetchall()}


@pytest.mark.postgres
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=conditions())
def test_forwarded_where_selects_the_same_rows_as_the_clients_in_postgresql(
    table: str, pg: psycopg.Connection[tuple[object, ...]], where: str
) -> None:
    assert select_ids(pg, table, forwarded(where)) == select_ids(pg, table, where)


@pytest.mark.postgres
def test_the_table_tells_wheres_apart_so_the_row_comparison_can_fail(
    table: str, pg: psycopg.Connection[tuple[object, ...]]
) -> None:
    def count(condition: str) -> int:
        return len(select_ids(pg, table, condition))

    assert 0 < count("done") < count("done IS NOT NULL") < len(ROWS)
    assert count("NOT done") == count("done = false") > 0


@pytest.mark.parametrize(
    "name",
    sorted(RESERVED_KEYWORDS | COL_NAME_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS | UNRESERVED_KEYWORDS),
)
def test_every_keyword_used_as_a_column_name_reads_back_as_that_column(name: str) -> None:
    node = ast.A_Expr(
        kind=A_Expr_Kind.AEXPR_OP,
        name=(ast.String(sval="="),),
        lexpr=ast.ColumnRef(fields=(ast.String(sval=name),)),
        rexpr=ast.A_Const(isnull=False, val=ast.Integer(ival=1)),
    )
    assert emit_where(node).endswith(" = 1")
