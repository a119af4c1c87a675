"""From validated parameters to a shape definition, checking what needs the catalog.

Continues `params.py` in Electric's order (`Shape.new/2`): the table name parses, the table
exists, queryable and selected columns are valid and cover the primary key, and the where is
one Electric's own parser accepts (`where_check`), judged against the table's column types.
PostgreSQL only sees the where (as Electric rebuilds it) when the snapshot runs.
"""

from __future__ import annotations

import json

from electric_imitation.catalog import Table, load_table
from electric_imitation.db import Connection
from electric_imitation.errors import InvalidRequestError, ParserCrashError
from electric_imitation.identifiers import IdentifierError, parse_relation
from electric_imitation.params import RequestParams
from electric_imitation.shapes import ShapeDefinition
from electric_imitation.versions import ServerVersion
from electric_imitation.where import check_param_keys
from electric_imitation.where_check import (
    CheckedWhere,
    WhereCrashError,
    WhereRefusalError,
    check_where,
)


async def resolve_definition(
    conn: Connection, params: RequestParams, server: ServerVersion
) -> tuple[ShapeDefinition, Table, tuple[str, ...]]:
    """The definition, its table and the selected columns (sorted, as Electric keeps them)."""
    try:
        schema, name = parse_relation(params.table)
    except IdentifierError as error:
        raise InvalidRequestError({"table": [str(error)]}) from None
    table = await load_table(conn, schema, name)
    if table is None:
        relation = f"{_inspect(schema)}.{_inspect(name)}"
        raise InvalidRequestError(
            {
                "table": [
                    f"Table {relation} does not exist. If the table name contains capitals "
                    "or special characters you must quote it."
                ]
            }
        )
    queryable = _check_queryable(table, params.queryable_columns)
    selected = _check_selected(table, params.columns, queryable)
    if params.params and server.has("subsets"):
        check_param_keys(params.params)  # 1.7's validators; 1.0.10 leaves it to the parser
    checked = judge_where(params.where, params.params, table, server, field="where")
    definition = ShapeDefinition(
        schema=schema,
        table=name,
        where=params.where,
        where_sql=checked.sql if checked else None,
        params=tuple(sorted(params.params.items())) if params.where is not None else (),
        columns=params.columns,
        queryable_columns=queryable,
        replica=params.replica,
        log=params.log,
    )
    return definition, table, selected


def judge_where(
    where: str | None,
    params: dict[str, str],
    table: Table,
    server: ServerVersion,
    *,
    field: str,
    subqueries: bool = True,
) -> CheckedWhere | None:
    """The where as Electric's parser takes it; its refusal lands under `errors[field]`."""
    if where is None:
        return None
    try:
        return check_where(where, params, table.where_types, server, subqueries=subqueries)
    except WhereRefusalError as refusal:
        raise InvalidRequestError({field: [refusal.message]}) from None
    except WhereCrashError as crash:
        raise ParserCrashError(crash.exception) from None


def _check_queryable(table: Table, queryable: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if queryable is None:
        return None
    missing = [c for c in table.pk if c not in queryable]
    invalid = [c for c in queryable if c not in table.column_names]
    if missing:
        message = "The list of queryable columns must include all primary key columns, missing: "
        raise InvalidRequestError({"queryable_columns": [message + ", ".join(missing)]})
    if invalid:
        message = "The following queryable columns are not found on the table: "
        raise InvalidRequestError({"queryable_columns": [message + ", ".join(invalid)]})
    return tuple(sorted(queryable))


def _check_selected(
    table: Table, columns: tuple[str, ...] | None, queryable: tuple[str, ...] | None
) -> tuple[str, ...]:
    selectable = queryable or table.column_names
    if columns is None:
        return tuple(sorted(selectable))
    missing = [c for c in table.pk if c not in columns]
    invalid = [c for c in columns if c not in selectable]
    if missing:
        message = "The list of columns must include all primary key columns, missing: "
        raise InvalidRequestError({"columns": [message + ", ".join(missing)]})
    if invalid:
        message = "The following columns are not found on the table: "
        raise InvalidRequestError({"columns": [message + ", ".join(invalid)]})
    return tuple(sorted(set(columns)))


def _inspect(name: str) -> str:
    # Elixir's `inspect/1` of a string: double-quoted with escapes.
    return json.dumps(name, ensure_ascii=False)
