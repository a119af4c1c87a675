"""Captured rows turned back into the table's row type, in PostgreSQL: rendered, and filtered.

Rendering goes through `json_populate_record(NULL::table, row)` and reads each column in the
server's text output (what logical replication sends: booleans `t`/`f`), never JSON's own
spelling of values. Membership runs the shape's where against that same record.
"""

from __future__ import annotations

from typing import Final

from psycopg import sql
from psycopg.types.string import TextLoader

from electric_imitation.catalog import Table
from electric_imitation.db import Connection
from electric_imitation.where import bind_values

Record = dict[str, str | None]

_EXISTS: Final = (
    "SELECT EXISTS (SELECT 1 FROM json_populate_record(NULL::{}, {}::json) AS {} WHERE (\n"
)


async def render_row(conn: Connection, table: Table, row_json: str) -> Record:
    """Every column of the captured row as PostgreSQL's output text (or None)."""
    columns = sql.SQL(", ").join(
        sql.SQL("r.{}").format(sql.Identifier(c)) for c in table.column_names
    )
    query = sql.SQL("SELECT {} FROM json_populate_record(NULL::{}, $1::json) AS r").format(
        columns, sql.Identifier(table.schema, table.name)
    )
    async with conn.cursor() as cursor:
        # Load every column as the raw text the server sent, whatever its type.
        for oid in {column.type_oid for column in table.columns}:
            cursor.adapters.register_loader(oid, TextLoader)
        await cursor.execute(query, [row_json])
        row = await cursor.fetchone()
    assert row is not None
    return dict(zip(table.column_names, row, strict=True))


async def matches_where(
    conn: Connection, table: Table, where: str, params: dict[str, str], row_json: str
) -> bool:
    """Whether the captured row satisfies `where` (with its `$n` params), decided by PostgreSQL."""
    values: list[str] = bind_values(where, params)
    query = (
        sql.SQL(_EXISTS).format(
            sql.Identifier(table.schema, table.name),
            sql.SQL(f"${len(values) + 1}"),
            sql.Identifier(table.name),
        )
        + sql.SQL(where)
        + sql.SQL("\n))")
    )
    cursor = await conn.execute(query, [*values, row_json], prepare=True)
    row = await cursor.fetchone()
    return bool(row and row[0])
