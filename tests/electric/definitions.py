"""From validated parameters to a shape definition, checking what needs the catalog.

Continues `params.py` in Electric's order (`Shape.new/2`): the table name parses, the table
exists, queryable and selected columns are valid and cover the primary key, the where's
parameters are all there. PostgreSQL itself judges the where when the snapshot runs.
"""

from __future__ import annotations

import json

from tests.electric.catalog import Table, load_table
from tests.electric.db import Connection
from tests.electric.errors import InvalidRequestError
from tests.electric.identifiers import IdentifierError, parse_relation
from tests.electric.params import RequestParams
from tests.electric.shapes import ShapeDefinition
from tests.electric.where import check_params


async def resolve_definition(
    conn: Connection, params: RequestParams
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
    if params.where is not None:
        check_params(params.where, params.params)
    definition = ShapeDefinition(
        schema=schema,
        table=name,
        where=params.where,
        params=tuple(sorted(params.params.items())) if params.where is not None else (),
        columns=params.columns,
        queryable_columns=queryable,
        replica=params.replica,
        log=params.log,
    )
    return definition, table, selected


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
