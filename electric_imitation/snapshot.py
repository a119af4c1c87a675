"""Initial snapshots and subset snapshots, executed in PostgreSQL.

Like Electric's `SnapshotQuery`, each runs in a REPEATABLE READ READ ONLY transaction whose
first statement records `pg_current_snapshot()`: changes from transactions visible in it are
already in the data and must not be replayed into the shape's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from electric_imitation.catalog import Table
from electric_imitation.chunks import Chunker
from electric_imitation.db import Connection
from electric_imitation.errors import InvalidRequestError, SnapshotFailedError
from electric_imitation.messages import snapshot_end, snapshot_row
from electric_imitation.params import SubsetParams
from electric_imitation.shapes import ShapeDefinition, Snapshot
from electric_imitation.where import bind_values, renumber

_SNAPSHOT_INFO: Final = """
WITH s AS (SELECT pg_current_snapshot() AS snap)
SELECT pg_snapshot_xmin(snap)::text,
       pg_snapshot_xmax(snap)::text,
       ARRAY(SELECT x::text FROM pg_snapshot_xip(snap) AS x ORDER BY x),
       (pg_current_wal_lsn() - '0/0'::pg_lsn)::text
  FROM s
"""
# SQLSTATE classes that mean "the database is unwell", not "your where is wrong".
_INFRASTRUCTURE_CLASSES: Final = ("08", "53", "57", "58", "XX")


@dataclass(frozen=True, slots=True)
class PgSnapshot:
    """What `pg_current_snapshot()` and `pg_current_wal_lsn()` said at the start."""

    xmin: int
    xmax: int
    xip: tuple[int, ...]
    lsn: int


async def take_snapshot(
    conn: Connection,
    definition: ShapeDefinition,
    table: Table,
    selected: tuple[str, ...],
    chunker: Chunker,
    *,
    with_end: bool,
) -> Snapshot:
    """Run the shape's query and cut it into chunks; with `with_end` (Electric 1.1.12+) the
    last one ends with `snapshot-end`. SnapshotFailedError when PostgreSQL refuses the query."""
    async with conn.transaction():
        pg = await _begin_snapshot(conn)
        rows: list[tuple[Any, ...]] = []
        if definition.log == "full":
            query, values = _select(definition, table, selected, None)
            rows = await _fetch(conn, query, values, None)
    messages = [_row_message(table, selected, row) for row in rows]
    chunks = chunker.split(messages)
    if with_end:
        chunks[-1].append(snapshot_end(pg.xmin, pg.xmax, pg.xip))
    return Snapshot(
        chunks=tuple(tuple(chunk) for chunk in chunks),
        xmin=pg.xmin,
        xmax=pg.xmax,
        xip=frozenset(pg.xip),
    )


async def take_subset(
    conn: Connection,
    definition: ShapeDefinition,
    table: Table,
    selected: tuple[str, ...],
    subset: SubsetParams,
    mark: int,
) -> tuple[PgSnapshot, list[str]]:
    """Rows of the shape restricted by the subset, as insert messages carrying `snapshot_mark`."""
    async with conn.transaction():
        pg = await _begin_snapshot(conn)
        if subset.order_by:
            probe = (
                sql.SQL("SELECT 1 FROM {}.{} ORDER BY \n").format(
                    sql.Identifier(table.schema), sql.Identifier(table.name)
                )
                + sql.SQL(subset.order_by)
                + sql.SQL("\nLIMIT 0")
            )
            await _fetch(conn, probe, [], ("subset", "order_by"))
        query, values = _select(definition, table, selected, subset)
        rows = await _fetch(conn, query, values, ("subset", "where"))
    return pg, [_row_message(table, selected, row, mark=mark) for row in rows]


async def _begin_snapshot(conn: Connection) -> PgSnapshot:
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    cursor = await conn.execute(_SNAPSHOT_INFO)
    row = await cursor.fetchone()
    assert row is not None
    return PgSnapshot(int(row[0]), int(row[1]), tuple(int(x) for x in row[2]), int(row[3]))


def _select(
    definition: ShapeDefinition,
    table: Table,
    selected: tuple[str, ...],
    subset: SubsetParams | None,
) -> tuple[sql.Composed, list[str]]:
    # Electric's snapshot casts every column with ::text (querying.ex), hence "true"/"false".
    columns = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in selected)
    query: sql.Composed = sql.SQL("SELECT {} FROM {}.{}").format(
        columns, sql.Identifier(table.schema), sql.Identifier(table.name)
    )
    where = definition.where_sql
    values = bind_values(where, definition.params_map) if where else []
    conditions: list[sql.Composed] = []
    if where:
        conditions.append(_spliced(where))
    if subset is not None and subset.where:
        conditions.append(_spliced(renumber(subset.where, len(values))))
        values = values + bind_values(subset.where, subset.params)
    if conditions:
        query = query + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
    if subset is not None:
        if subset.order_by:
            # An ORDER BY list cannot be parenthesised; the newline still ends a `--` comment.
            query = query + sql.SQL(" ORDER BY \n") + sql.SQL(subset.order_by) + sql.SQL("\n")
        if subset.limit is not None:
            query = query + sql.SQL(" LIMIT {}").format(sql.Literal(subset.limit))
        if subset.offset is not None:
            query = query + sql.SQL(" OFFSET {}").format(sql.Literal(subset.offset))
    elif _has_real_pk(table):
        # Qualified: a bare name would sort by the ::text output column of the same name.
        order = sql.SQL(", ").join(sql.Identifier(table.schema, table.name, c) for c in table.pk)
        query = query + sql.SQL(" ORDER BY ") + order
    return query, values


def _spliced(text: str) -> sql.Composed:
    # The one place client SQL enters a query, as in Electric: a where rebuilt from its parse
    # tree (`where_check`), so nothing can follow the expression. The parentheses and the
    # newlines are belts and braces; `prepare=True` below refuses a second statement anyway.
    return sql.SQL("(\n") + sql.SQL(text) + sql.SQL("\n)")


async def _fetch(
    conn: Connection, query: sql.Composed, values: Sequence[str], blame: tuple[str, ...] | None
) -> list[tuple[Any, ...]]:
    """Run a query holding client SQL; PostgreSQL's complaint goes to the field in `blame`."""
    try:
        cursor = await conn.execute(query, values, prepare=True)
        return await cursor.fetchall()
    except psycopg.DatabaseError as error:
        sqlstate = error.sqlstate or "XX"
        message = error.diag.message_primary or str(error)
        if sqlstate[:2] in _INFRASTRUCTURE_CLASSES:
            raise
        if blame is None:
            raise SnapshotFailedError(message) from None
        errors: dict[str, Any] = {blame[-1]: [message]}
        for key in reversed(blame[:-1]):
            errors = {key: errors}
        raise InvalidRequestError(errors) from None


def _row_message(
    table: Table, selected: tuple[str, ...], row: tuple[Any, ...], *, mark: int | None = None
) -> str:
    value = dict(zip(selected, row, strict=True))
    return snapshot_row(table.schema, table.name, value, table.pk, mark=mark)


def _has_real_pk(table: Table) -> bool:
    return any(column.pk_position is not None for column in table.columns)
